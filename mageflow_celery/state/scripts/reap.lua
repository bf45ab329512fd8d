-- reap.lua: what the reaper must handle in one swarm: members whose token deadline passed (dispatched
-- past dispatch_timeout_s, running past their lease) and a stale finalization claim, which this call
-- takes over (fin_at is reset, so only one reaper re-runs it per claim period).
-- KEYS: see _lib.lua
-- ARGV[1] claim_s (a claim older than this is stale)   ARGV[2] most expired members to return
-- Returns {'ok', state, stale_fin ('' | 's' | 'f' | 'c'), on_lost, {idx, mstate, deadline, sig, owner, ...},
--   now, lease_s, dispatch_timeout_s, next, rate_ready} where next is the earliest deadline still ahead (a
--   token's, a finalization claim's, a rate's next slot) or '' when none: the time the reaper must look
--   again; rate_ready is 1 when a rate holding members back lets the next one in now
--   | {'done'} (finished, finalized, no token held: nothing will ever change) | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
local t = now()
local stale = ''
local next_at = nil
if m.fin == 'claimed' then
  local fin_at = tonumber(redis.call('HGET', K_META, 'fin_at')) or 0
  if t - fin_at >= tonumber(ARGV[1]) then
    redis.call('HSET', K_META, 'fin_at', tostring(t))
    fin_at = t
    stale = ({succeeded = 's', failed = 'f', cancelled = 'c'})[m.state] or ''
  end
  next_at = fin_at + tonumber(ARGV[1])
elseif m.fin == 'done' and m.dispatched + m.running == 0 then
  return {'done'}
end
local hits = redis.call('ZRANGEBYSCORE', K_TOKENS, '-inf', t, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for i = 1, #hits, 2 do
  local idx = hits[i]
  out[#out + 1] = idx
  local raw = redis.call('HGET', K_MSTATE, idx) or ''
  out[#out + 1] = string.sub(raw, 1, 1)
  out[#out + 1] = hits[i + 1]
  out[#out + 1] = redis.call('HGET', K_MEMBERS, idx) or ''
  out[#out + 1] = string.sub(raw, 3)
end
local ahead = redis.call('ZRANGEBYSCORE', K_TOKENS, '(' .. t, '(+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #ahead > 0 then
  local first = tonumber(ahead[2])
  if next_at == nil or first < next_at then next_at = first end
end
-- a rate holding queued members back: look again at its next slot; at or after it, the reaper admits (F3)
local rate_ready = 0
if m.rate_int > 0 and m.queued > 0 and m.state == 'running' and m.paused == 0 then
  if m.tat <= t then
    rate_ready = 1
  elseif next_at == nil or m.tat < next_at then
    next_at = m.tat
  end
end
return {'ok', m.state, stale, redis.call('HGET', K_META, 'on_lost') or 'retry', out, tostring(t),
  tostring(m.lease_s), tostring(m.dispatch_to), next_at and tostring(next_at) or '', rate_ready}
