-- pause.lua: stop admitting members (running members finish); survives worker restarts.
-- KEYS: see _lib.lua
-- Returns {'ok'} | {'noop'} | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
if m.paused == 1 or is_finished(m) then return {'noop'} end
local t = now()
set(m, 'paused', 1)
save_meta(m, t)
return {'ok'}
