-- renew.lua: a worker still holds these deliveries: extend their leases (only where the delivery's
-- token still holds the lease: a member handed off, re-published or finished is 'gone').
-- KEYS: see _lib.lua
-- ARGV pairs: index, lease token
-- Returns {'ok', lease_s, gone_ids} | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
local t = now()
local deadline = t + m.lease_s
local gone = {}
for i = 1, #ARGV, 2 do
  local idx = ARGV[i]
  local st, o = get_member(idx, t)
  if st == 'r' and o.tok == ARGV[i + 1] then
    redis.call('ZADD', K_TOKENS, deadline, idx)
  else
    gone[#gone + 1] = idx
  end
end
save_meta(m, t)
return {'ok', tostring(m.lease_s), gone}
