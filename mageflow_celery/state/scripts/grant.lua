-- grant.lua: its pool granted this pooled swarm tokens: admit that many queued members, each holding one
-- grant; the grants it cannot use now (paused, ended, nothing queued, its own limit full) go back.
-- KEYS: see _lib.lua
-- ARGV[1] want_ctx   ARGV[2 ..] grant ids
-- Returns (flow: see _lib.lua) {'ok', '', ids, sigs, ctx, {}, flow} | {'unknown', {grant ids}}
local m = load_meta()
local grants = {}
for i = 2, #ARGV do grants[#grants + 1] = ARGV[i] end
if not m then return {'unknown', grants} end
local t = now()
local ids, sigs = admit(m, t, grants)
for i = #ids + 1, #grants do m._released[#m._released + 1] = grants[i] end
save_meta(m, t)
return {'ok', '', ids, sigs, ctx_if(ARGV[1], #ids), {}, flow(m)}
