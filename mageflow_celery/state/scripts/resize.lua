-- resize.lua: change a swarm's max_concurrency; raising it admits at once, lowering lets running members
-- finish (nothing is revoked).
-- KEYS: see _lib.lua
-- ARGV[1] new limit (>= 1)   ARGV[2] want_ctx
-- Returns (flow: see _lib.lua) {'ok', fin, ids, sigs, ctx} | {'noop'} (finished, or the same limit) | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
local limit = tonumber(ARGV[1])
if is_finished(m) or limit == m.limit then return {'noop'} end
local t = now()
set(m, 'limit', limit)
local ids, sigs = admit(m, t)
save_meta(m, t)
return {'ok', '', ids, sigs, ctx_if(ARGV[2], #ids), {}, flow(m)}
