-- close.lua: close the swarm to new members; it may finish at once.
-- KEYS: see _lib.lua
-- Returns (flow: see _lib.lua) {'ok', fin} | {'noop'} | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
if m.closed == 1 or is_finished(m) then return {'noop'} end
local t = now()
set(m, 'closed', 1)
local fin = maybe_finish(m, t)
save_meta(m, t)
return {'ok', fin, {}, {}, false, {}, flow(m)}
