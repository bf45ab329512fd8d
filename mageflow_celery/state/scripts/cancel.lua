-- cancel.lua: cancel the swarm: registered and queued members never run, token holders are returned
-- so the caller revokes them (dispatched ones are also dropped at receipt); no callback runs.
-- KEYS: see _lib.lua
-- Returns (flow: see _lib.lua) {'ok', 'c', {}, {}, false, revoke ('index:step')} | {'noop'} | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
if is_finished(m) then return {'noop'} end
local t = now()
local revoke = token_holders(t)
stop_early(m, t, 'cancelled')
save_meta(m, t)
return {'ok', 'c', {}, {}, false, revoke, flow(m)}
