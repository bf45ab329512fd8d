-- pool/drop.lua: the reaper found grants whose holder is gone (a process died between two steps of the
-- protocol, docs/pools.md): free them, then give the free tokens out.
-- KEYS: see pool/_lib.lua
-- ARGV grant ids, each with the 'swarm|at' value it was read with (dropped only if unchanged)
-- Returns: see settled() in pool/_lib.lua
local t = now()
local dropped = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', K_HOLDERS, ARGV[i]) == ARGV[i + 1] then
    unhold(ARGV[i])
    dropped = dropped + 1
  end
end
local grants, wake = distribute(t)
return settled(t, grants, wake, dropped)
