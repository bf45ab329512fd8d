-- requeue.lua: the reaper gives members whose token deadline passed back to the broker with their own
-- task id: each becomes dispatched again (it keeps its token) in a new publish epoch, so any older copy
-- still travelling is stale at the start gate. In a cancelled or failed swarm they are cancelled
-- instead, as at receipt.
-- KEYS: see _lib.lua
-- ARGV[1] want_ctx   ARGV[2 ..] member indices
-- Returns (flow: see _lib.lua) {'ok', '', ids ('index:epoch'), sigs, ctx, {}, n_cancelled} | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
local t = now()
local ended = m.state == 'cancelled' or m.state == 'failed'
local ids, plain, cancelled = {}, {}, 0
for i = 2, #ARGV do
  local idx = ARGV[i]
  local st, o = get_member(idx, t)
  local score = tonumber(redis.call('ZSCORE', K_TOKENS, idx))
  if (st == 'd' or st == 'r') and score ~= nil and score <= t then
    if ended then
      release(m, idx, o)
      ended(idx, 'c')
      incr(m, st == 'd' and 'dispatched' or 'running', -1)
      incr(m, 'cancelled', 1)
      cancelled = cancelled + 1
    else
      if st == 'r' then
        incr(m, 'running', -1)
        incr(m, 'dispatched', 1)
      end
      o.e, o.s, o.tok, o.flags, o.t0 = o.e + 1, 0, '', '', t
      put_member(idx, 'd', o)
      redis.call('ZADD', K_TOKENS, dispatch_deadline(m, t), idx)
      ids[#ids + 1] = idx .. ':' .. o.e
      plain[#plain + 1] = idx
    end
  end
end
local sigs = {}
if #plain > 0 then sigs = redis.call('HMGET', K_MEMBERS, unpack(plain)) end
save_meta(m, t)
return {'ok', '', ids, sigs, ctx_if(ARGV[1], #ids), {}, flow(m), cancelled}
