-- start.lua: start a created swarm: store its run context, queue the initial members, admit.
-- KEYS: see _lib.lua
-- ARGV[1] ctx (encoded run context)   ARGV[2] def (encoded finalizer definition)   ARGV[3] want_ctx
-- Returns (flow: see _lib.lua) {'ok', fin, ids, sigs, ctx} | {'started', state} | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
if m.state ~= 'pending' then return {'started', m.state} end
local t = now()
set(m, 'state', 'running')
set(m, 'started_at', t)
redis.call('HSET', K_META, 'ctx', ARGV[1], 'def', ARGV[2])
local initial = {}
for i = 0, m.n_initial - 1 do initial[#initial + 1] = tostring(i) end
push_queue(m, initial)
incr(m, 'registered', -#initial)
local ids, sigs = admit(m, t)
local fin = maybe_finish(m, t)
save_meta(m, t)
return {'ok', fin, ids, sigs, ctx_if(ARGV[3], #ids), {}, flow(m)}
