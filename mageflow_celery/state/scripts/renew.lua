-- renew.lua: a worker still holds these members: extend their leases. With ARGV[1] = '1' (the worker
-- that holds them) a member found dispatched again (after a hand-off or a re-publish that raced its
-- receipt) is taken back as running, as receive.lua would.
-- KEYS: see _lib.lua
-- ARGV[1] take ('1' | '0')   ARGV[2 ..] member indices
-- Returns {'ok', lease_s, gone_ids (members no longer running: finished, or not held)} | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
local t = now()
local deadline = t + m.lease_s
local take = ARGV[1] == '1' and m.state == 'running'
local gone = {}
for i = 2, #ARGV do
  local idx = ARGV[i]
  local st = redis.call('HGET', K_MSTATE, idx)
  if st == 'd' and take then
    redis.call('HSET', K_MSTATE, idx, 'r')
    incr(m, 'dispatched', -1)
    incr(m, 'running', 1)
    st = 'r'
  end
  if st == 'r' then
    redis.call('ZADD', K_TOKENS, deadline, idx)
  else
    gone[#gone + 1] = idx
  end
end
save_meta(m, t)
return {'ok', tostring(m.lease_s), gone}
