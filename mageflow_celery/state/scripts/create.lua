-- create.lua: create a swarm if absent: meta fields and the initial members' signatures.
-- KEYS: see _lib.lua
-- ARGV[1] n_fields   ARGV[2 .. 1+2*n_fields] meta field/value pairs   ARGV[2+2*n_fields ..] member blobs
-- Returns {'created'} or {'exists'}
if redis.call('EXISTS', K_META) == 1 then return {'exists'} end
local t = now()
local nf = tonumber(ARGV[1])
local meta = {}
for i = 2, 1 + 2 * nf do meta[#meta + 1] = ARGV[i] end
meta[#meta + 1] = 'created_at'; meta[#meta + 1] = tostring(t)
meta[#meta + 1] = 'ttl_at'; meta[#meta + 1] = tostring(t)
bulk('HSET', K_META, meta)
local members = {'_', ''}
local idx = 0
for i = 2 + 2 * nf, #ARGV do
  members[#members + 1] = tostring(idx); members[#members + 1] = ARGV[i]
  idx = idx + 1
end
bulk('HSET', K_MEMBERS, members)
redis.call('HSET', K_MSTATE, '_', '')
redis.call('HSET', K_RESULTS, '_', '')
redis.call('HSET', K_ERRORS, '_', '')
for _, k in ipairs({K_ENDED.s, K_ENDED.f, K_ENDED.c, K_REG}) do redis.call('ZADD', k, -1, '_') end
redis.call('SADD', K_CHILDREN, '_')
redis.call('ZADD', K_TOKENS, '+inf', '_')
expire_all(tonumber(redis.call('HGET', K_META, 'idle_ttl')))
return {'created'}
