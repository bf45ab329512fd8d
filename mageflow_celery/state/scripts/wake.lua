-- wake.lua: a rate's next slot came (the reaper looked at the due index): admit what the rate allows now.
-- KEYS: see _lib.lua
-- ARGV[1] want_ctx
-- Returns (flow: see _lib.lua) {'ok', fin, ids, sigs, ctx, {}, flow} | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
local t = now()
local ids, sigs = admit(m, t)
local fin = maybe_finish(m, t)
save_meta(m, t)
return {'ok', fin, ids, sigs, ctx_if(ARGV[1], #ids), {}, flow(m)}
