-- held.lua: the pool grants the members of a swarm hold now (the reaper frees grants nobody holds, F5).
-- Reads only; its cost follows the members holding a token, never the swarm's size.
-- KEYS: see _lib.lua
-- Returns {'ok', {grant id, ...}} | {'unknown'}
if redis.call('EXISTS', K_META) == 0 then return {'unknown'} end
local out = {}
for _, idx in ipairs(redis.call('ZRANGEBYSCORE', K_TOKENS, '-inf', '(+inf')) do
  local st, o = get_member(idx, 0)
  if o and o.g ~= '' then out[#out + 1] = o.g end
end
return {'ok', out}
