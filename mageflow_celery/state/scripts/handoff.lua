-- handoff.lua: a running member hands its token on to a message it just published that carries it on
-- (a chain member's next step, a retry, a Task.replace replacement): the member is dispatched again
-- (it keeps its token) until that message is received, and its lease holder lets go. Recorded before
-- the message is sent, so the successor's receipt always finds it.
-- KEYS: see _lib.lua
-- ARGV[1] index   ARGV[2] lease token of the handing delivery   ARGV[3] lowest step that may take it
-- Returns {'ok'} | {'noop'} (that delivery does not hold the lease any more) | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
local idx = ARGV[1]
local t = now()
local st, o = get_member(idx, t)
if st ~= 'r' or o.tok ~= ARGV[2] then return {'noop'} end
incr(m, 'running', -1)
incr(m, 'dispatched', 1)
o.s = tonumber(ARGV[3])
o.tok = ''
o.t0 = t
put_member(idx, 'd', o)
redis.call('ZADD', K_TOKENS, dispatch_deadline(m, t), idx)
save_meta(m, t)
return {'ok'}
