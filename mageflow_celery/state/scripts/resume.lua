-- resume.lua: admit again, refilling up to the limit at once.
-- KEYS: see _lib.lua
-- ARGV[1] want_ctx
-- Returns (flow: see _lib.lua) {'ok', fin, ids, sigs, ctx} | {'noop'} | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
if m.paused == 0 or is_finished(m) then return {'noop'} end
local t = now()
set(m, 'paused', 0)
local ids, sigs = admit(m, t)
local fin = maybe_finish(m, t)
save_meta(m, t)
return {'ok', fin, ids, sigs, ctx_if(ARGV[1], #ids), {}, flow(m)}
