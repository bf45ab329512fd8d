-- grant.lua: its pool granted this pooled swarm tokens: admit that many queued members, each holding one
-- grant; the grants it cannot use now (paused, ended, nothing queued, its own limit full) go back.
-- KEYS: see _lib.lua
-- ARGV[1] want_ctx   ARGV[2] granted at (the pool's clock)   ARGV[3] max age
-- ARGV[4] pass budget: grants its ended members may pass on without asking the pool (0: none, it is not the
--   pool's only swarm; docs/pools.md)   ARGV[5] the pool's generation of that decision   ARGV[6 ..] grant ids
-- Grants older than the max age are not used (given back): the reaper may already have freed them as
-- lost (it frees only older ones than that, docs/pools.md), so using one could exceed the pool's limit.
-- Returns (flow: see _lib.lua) {'ok', '', ids, sigs, ctx, {}, flow} | {'unknown', {grant ids}}
local m = load_meta()
local grants = {}
for i = 6, #ARGV do grants[#grants + 1] = ARGV[i] end
if not m then return {'unknown', grants} end
local t = now()
set_pass(m, tonumber(ARGV[4]), tonumber(ARGV[5]))
local usable = grants
if t - tonumber(ARGV[2]) > tonumber(ARGV[3]) then usable = {} end
local ids, sigs = admit(m, t, usable)
for i = #ids + 1, #grants do m._released[#m._released + 1] = grants[i] end
save_meta(m, t)
return {'ok', '', ids, sigs, ctx_if(ARGV[1], #ids), {}, flow(m)}
