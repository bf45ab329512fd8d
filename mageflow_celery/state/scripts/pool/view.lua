-- pool/view.lua: a pool as it is: limit, rate, tokens in use by swarm, swarms waiting (in ring order).
-- KEYS: see pool/_lib.lua
-- Returns {limit, rate_int, tat, now, {grant id, 'swarm|at', ...}, {waiting swarm, demand, ...}, rate, seq}
local t = now()
local waiting = {}
for _, swarm in ipairs(redis.call('LRANGE', K_RING, 0, -1)) do
  waiting[#waiting + 1] = swarm
  waiting[#waiting + 1] = tostring(num(K_WANTS, swarm))
end
return {tostring(num(K_META, 'limit')), tostring(num(K_META, 'rate_int')), tostring(num(K_META, 'tat')),
  tostring(t), redis.call('HGETALL', K_HOLDERS), waiting, redis.call('HGET', K_META, 'rate') or '',
  tostring(num(K_META, 'seq'))}
