-- receive.lua: the start gate. A worker received a copy of a member (before Celery reserves it): let
-- it run and give it the lease, or say why it must not run (D5: at most one execution at a time).
-- KEYS: see _lib.lua
-- ARGV[1] index   ARGV[2] step (FINAL for the member id)   ARGV[3] lease token of this delivery
-- ARGV[4] publish epoch carried by the message ('' when unknown)
-- ARGV[5] token of an earlier delivery this same worker held and no longer holds ('' if none)
-- Returns {'ok'} (run it: it holds the lease) | {'drop'} (the swarm was cancelled or failed: revoke it)
--   | {'dup'} (another copy holds a live lease, the copy is stale, or the member already finished:
--   discard it without running; meta 'dups' counts them) | {'ignore'} (not a dispatched member: run it, untracked) | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
local function dup()
  redis.call('HINCRBY', K_META, 'dups', 1)
  return {'dup'}
end
local idx = ARGV[1]
local t = now()
local st, o = get_member(idx, t)
if m.state == 'cancelled' or m.state == 'failed' then
  if st == 'd' or st == 'r' then
    release(m, idx, o)
    ended(idx, 'c')
    incr(m, st == 'd' and 'dispatched' or 'running', -1)
    incr(m, 'cancelled', 1)
    save_meta(m, t)
    return {'drop', m._released, m.pool_on == 1 and m.pool or ''}
  end
  if st == 'c' then return {'drop'} end
end
if st == 's' or st == 'f' or st == 'c' then return dup() end
if st ~= 'd' and st ~= 'r' then return {'ignore'} end
local epoch = tonumber(ARGV[4])
local step = tonumber(ARGV[2])
if (epoch ~= nil and epoch < o.e) or step < o.s then return dup() end
if st == 'r' and step == o.s and o.tok ~= '' and o.tok ~= ARGV[5] then
  local deadline = tonumber(redis.call('ZSCORE', K_TOKENS, idx)) or 0
  if deadline > t then
    if not string.find(o.flags, 'u', 1, true) then
      o.flags = o.flags .. 'u'
      put_member(idx, st, o)
    end
    return dup()
  end
end
if st == 'd' then
  incr(m, 'dispatched', -1)
  incr(m, 'running', 1)
  if o.e == 0 and o.s == 0 then observe_latency(m, math.max(0, t - o.t0)) end
end
o.s = step
o.tok = ARGV[3]
o.flags = string.gsub(o.flags, 'p', '')
put_member(idx, 'r', o)
redis.call('ZADD', K_TOKENS, t + m.lease_s, idx)
save_meta(m, t)
return {'ok'}
