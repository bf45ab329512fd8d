-- unpublished.lua: publishing these admitted members failed (broker down): they stay dispatched and
-- holding their token, flagged so the reaper re-publishes them at its next tick, not after the
-- dispatch timeout.
-- KEYS: see _lib.lua
-- ARGV member indices
-- Returns {'ok', n_flagged} | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
local t = now()
local flagged = 0
for i = 1, #ARGV do
  local idx = ARGV[i]
  local st, o = get_member(idx, t)
  if st == 'd' then
    if not string.find(o.flags, 'p', 1, true) then o.flags = o.flags .. 'p' end
    put_member(idx, st, o)
    redis.call('ZADD', K_TOKENS, t, idx)
    flagged = flagged + 1
  end
end
return {'ok', flagged}
