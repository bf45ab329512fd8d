-- requeue.lua: give members back to the broker with the same task id: each becomes dispatched again
-- (it keeps its token) with a fresh dispatch deadline. Mode 'expired' (the reaper): only members whose
-- token deadline passed; their signatures are returned for re-publishing; in a cancelled or failed
-- swarm they are cancelled instead, as at receipt. Mode 'handoff' (a member that raised Ignore, e.g.
-- Task.replace: another message with its id carries it on): a running member waits for that message.
-- KEYS: see _lib.lua
-- ARGV[1] mode ('expired' | 'handoff')   ARGV[2] want_ctx   ARGV[3 ..] member indices
-- Returns {'ok', '', ids, sigs, ctx, {}, n_cancelled} | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
local t = now()
local expired = ARGV[1] == 'expired'
local ended = m.state == 'cancelled' or m.state == 'failed'
local ids, cancelled = {}, 0
for i = 3, #ARGV do
  local idx = ARGV[i]
  local st = redis.call('HGET', K_MSTATE, idx)
  local held = st == 'd' or st == 'r'
  if held and expired then
    local score = tonumber(redis.call('ZSCORE', K_TOKENS, idx))
    held = score ~= nil and score <= t
  elseif held then
    held = st == 'r'
  end
  if held and expired and ended then
    redis.call('HSET', K_MSTATE, idx, 'c')
    redis.call('ZREM', K_TOKENS, idx)
    incr(m, st == 'd' and 'dispatched' or 'running', -1)
    incr(m, 'cancelled', 1)
    cancelled = cancelled + 1
  elseif held then
    if st == 'r' then
      redis.call('HSET', K_MSTATE, idx, 'd')
      incr(m, 'running', -1)
      incr(m, 'dispatched', 1)
    end
    redis.call('ZADD', K_TOKENS, t + m.dispatch_to, idx)
    ids[#ids + 1] = idx
  end
end
local sigs = {}
if expired and #ids > 0 then sigs = redis.call('HMGET', K_MEMBERS, unpack(ids)) end
save_meta(m, t)
if not expired then ids = {} end
return {'ok', '', ids, sigs, ctx_if(ARGV[2], #ids), {}, cancelled}
