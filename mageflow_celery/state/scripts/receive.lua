-- receive.lua: a worker received a member (start gate): take a lease, or drop it if the swarm ended.
-- KEYS: see _lib.lua
-- ARGV[1] index
-- Returns {'ok'} (run it) | {'drop'} (revoke it: swarm cancelled/failed) | {'ignore'} (run, untracked) | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
local idx = ARGV[1]
local st = redis.call('HGET', K_MSTATE, idx)
local t = now()
if m.state == 'cancelled' or m.state == 'failed' then
  if st == 'd' or st == 'r' then
    redis.call('HSET', K_MSTATE, idx, 'c')
    redis.call('ZREM', K_TOKENS, idx)
    incr(m, st == 'd' and 'dispatched' or 'running', -1)
    incr(m, 'cancelled', 1)
    save_meta(m, t)
    return {'drop'}
  end
  if st == 'c' then return {'drop'} end
  return {'ignore'}
end
if st == 'd' then
  redis.call('HSET', K_MSTATE, idx, 'r')
  incr(m, 'dispatched', -1)
  incr(m, 'running', 1)
elseif st ~= 'r' then
  return {'ignore'}
end
redis.call('ZADD', K_TOKENS, t + m.lease_s, idx)
save_meta(m, t)
return {'ok'}
