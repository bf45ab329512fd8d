-- enqueue.lua: queue one registered member (member.apply_async), storing its run kwargs; admit.
-- KEYS: see _lib.lua
-- ARGV[1] index   ARGV[2] member blob (run kwargs merged)   ARGV[3] want_ctx
-- Returns (flow: see _lib.lua) {'ok', fin, ids, sigs, ctx} | {'closed'} | {'twice'} | {'nomember'} | {'initial'} | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
if is_finished(m) then return {'closed'} end
local idx = tonumber(ARGV[1])
if idx >= m.total then return {'nomember'} end
if idx < m.n_initial then return {'initial'} end
if redis.call('HEXISTS', K_MSTATE, ARGV[1]) == 1 then return {'twice'} end
local t = now()
redis.call('HSET', K_MEMBERS, ARGV[1], ARGV[2])
redis.call('HSET', K_MSTATE, ARGV[1], 'q')
redis.call('ZREM', K_REG, ARGV[1])
incr(m, 'registered', -1)
push_queue(m, {ARGV[1]})
local ids, sigs = admit(m, t)
local fin = maybe_finish(m, t)
save_meta(m, t)
return {'ok', fin, ids, sigs, ctx_if(ARGV[3], #ids), {}, flow(m)}
