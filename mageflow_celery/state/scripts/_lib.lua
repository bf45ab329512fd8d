-- _lib.lua: shared helpers, prepended to every script by scripts/__init__.py (not a script itself).
-- Every script receives all keys of one swarm, in this order (they share the {swarm_id} hash tag):
-- KEYS[1] meta     hash  state, flags, limits, counters, ctx, def
-- KEYS[2] members  hash  index -> encoded member signature ('_' sentinel)
-- KEYS[3] queue    list  queued member indices, FIFO
-- KEYS[4] mstate   hash  index -> q|s|f|c, or d|r followed by the owner record of a member holding a
--                        token: 'd|epoch|step|token|flags|t0|grant' (see below; '_' sentinel; absent =
--                        registered)
-- KEYS[5] tokens   zset  index -> deadline of dispatched/running members ('_' sentinel at +inf)
-- KEYS[6] results  hash  index -> encoded result ('_' sentinel)
-- KEYS[7] errors   hash  index -> JSON error record ('_' sentinel)
-- KEYS[8..10] succeeded, failed, cancelled  zsets  index -> index of the members that ended so
-- KEYS[11] registered  zset  index -> index of members added with add_task and not run yet
-- KEYS[12] children    set   ids of nested swarms started as members
local K_META, K_MEMBERS, K_QUEUE, K_MSTATE = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_TOKENS, K_RESULTS, K_ERRORS = KEYS[5], KEYS[6], KEYS[7]
local K_ENDED = {s = KEYS[8], f = KEYS[9], c = KEYS[10]}
local K_REG, K_CHILDREN = KEYS[11], KEYS[12]

local CHUNK = 2000
-- Step number of a member's own task id (a plain member, a chain member's last step); keys.FINAL_STEP.
local FINAL_STEP = 1073741824
local FIELDS = {
  'state', 'closed', 'paused', 'limit', 'stop_after', 'max_tasks', 'total', 'n_initial',
  'registered', 'queued', 'dispatched', 'running', 'succeeded', 'failed', 'cancelled',
  'idle_ttl', 'result_ttl', 'ttl_at', 'dispatch_to', 'lease_s', 'fin', 'nerr', 'max_err',
  'revoke_on_fail', 'admitted', 'pool', 'pool_on', 'rate_int', 'tat', 'weight', 'pass', 'pgen', 'hl_sum',
  'hl:0.005', 'hl:0.01', 'hl:0.025', 'hl:0.05', 'hl:0.1', 'hl:0.25', 'hl:0.5', 'hl:1', 'hl:2.5', 'hl:5', 'hl:10',
  'hl:+Inf',
}
local TEXT = {state = true, fin = true, pool = true}

local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function load_meta()
  local vals = redis.call('HMGET', K_META, unpack(FIELDS))
  if not vals[1] then return nil end
  local m = {_dirty = {}, _released = {}, _pool_want = 0, _freed = 0}
  for i, f in ipairs(FIELDS) do
    local v = vals[i]
    if TEXT[f] then m[f] = v or '' else m[f] = tonumber(v) or 0 end
  end
  return m
end

local function set(m, f, v) m[f] = v; m._dirty[f] = true end
local function incr(m, f, d) set(m, f, m[f] + d) end

local function is_finished(m)
  return m.state == 'succeeded' or m.state == 'failed' or m.state == 'cancelled'
end

-- Call cmd(key, ...) with flat args in chunks (Lua's unpack has a small stack limit).
local function bulk(cmd, key, args)
  local n = #args
  local i = 1
  local first
  while i <= n do
    local j = math.min(i + CHUNK - 1, n)
    local r = redis.call(cmd, key, unpack(args, i, j))
    if first == nil then first = r end
    i = j + 1
  end
  return first
end

-- Give every key of the swarm a TTL; a TTL <= 0 means never expire (result_expires 0 / None).
local function expire_all(ttl)
  if ttl <= 0 then
    for _, k in ipairs(KEYS) do redis.call('PERSIST', k) end
    return
  end
  for _, k in ipairs(KEYS) do redis.call('EXPIRE', k, ttl) end
end

-- Append indices to the queue; a queue created by this push gets the swarm's TTL.
local function push_queue(m, ids)
  if #ids == 0 then return end
  local first_len = bulk('RPUSH', K_QUEUE, ids)
  if first_len == math.min(#ids, CHUNK) then redis.call('EXPIRE', K_QUEUE, m.idle_ttl) end
  incr(m, 'queued', #ids)
end

-- The winner of a finalization decision records a claim; the reaper re-runs stale claims.
local function finish(m, t, state)
  set(m, 'state', state)
  set(m, 'finished_at', t)
  set(m, 'fin', 'claimed')
  set(m, 'fin_at', t)
  m._finished_now = true
end

-- Write dirty meta fields and keep the TTLs: sliding while unfinished, result TTL once finished.
local function save_meta(m, t)
  local args = {}
  if m._finished_now then
    expire_all(m.result_ttl)
  elseif not is_finished(m) and t - m.ttl_at >= math.min(60, m.idle_ttl / 10) then
    set(m, 'ttl_at', t)
    expire_all(m.idle_ttl)
  end
  for f, _ in pairs(m._dirty) do
    args[#args + 1] = f
    args[#args + 1] = tostring(m[f])
  end
  if #args > 0 then redis.call('HSET', K_META, unpack(args)) end
end

-- Owner record of a member holding a token (D5: at most one execution at a time), kept after its state
-- letter in mstate ('d|e|s|tok|flags|t0|g', 'r|...'):
--   e     publish epoch: +1 each time the reaper re-publishes the member; older copies are stale
--   s     step: the step whose delivery holds the lease (running), or the lowest step that may take it
--         (dispatched); a member's own id is step FINAL, a chain member's earlier steps 0, 1, ...
--   tok   lease token of the delivery that holds it ('' while dispatched)
--   flags 'p': its publish failed (re-publish at once); 'u': a duplicate copy was dropped meanwhile
--   t0    when it was last dispatched (the dispatch timeout counts from there)
--   g     the pool grant it holds (a pooled swarm's member also holds one token of its pool), or ''
local function owner_of(raw, t)
  local e, s, tok, flags, t0, g = string.match(raw, '^.|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
  return {
    e = tonumber(e) or 0, s = tonumber(s) or 0, tok = tok or '', flags = flags or '', t0 = tonumber(t0) or t,
    g = g or '',
  }
end

-- A member's state letter (nil: registered or unknown) and, for one holding a token (d, r), its owner.
local function get_member(idx, t)
  local raw = redis.call('HGET', K_MSTATE, idx)
  if not raw then return nil, nil end
  local st = string.sub(raw, 1, 1)
  if st == 'd' or st == 'r' then return st, owner_of(raw, t) end
  return st, nil
end

-- The state letter of an mstate value (HMGET / HGET reply; false when absent).
local function letter(raw)
  if not raw then return nil end
  return string.sub(raw, 1, 1)
end

local function owner_str(o)
  return o.e .. '|' .. o.s .. '|' .. o.tok .. '|' .. o.flags .. '|' .. o.t0 .. '|' .. o.g
end

-- Record a member holding a token: state letter 'd' or 'r' and its owner record, in one write.
local function put_member(idx, st, o)
  redis.call('HSET', K_MSTATE, idx, st .. '|' .. owner_str(o))
end

-- Upper bounds (seconds) of the hand-off latency histogram: a member's admission to its receipt.
local LATENCY_BUCKETS = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

-- Count one hand-off latency in the swarm's histogram (meta fields hl:<le>, hl_sum, saved with the meta): folded into the
-- key prefix's stats when the swarm finishes, read by the metrics.
local function observe_latency(m, seconds)
  local le = '+Inf'
  for _, bound in ipairs(LATENCY_BUCKETS) do
    if seconds <= bound then le = tostring(bound); break end
  end
  incr(m, 'hl:' .. le, 1)
  incr(m, 'hl_sum', seconds)
end

-- The first deadline of a dispatched member: the reaper looks at it after lease_s (did a worker
-- without mageflow run it?), and re-publishes it once dispatch_timeout_s passed since t0.
local function dispatch_deadline(m, t)
  return t + math.min(m.lease_s, m.dispatch_to)
end

-- Move up to (limit - tokens held) queued members to 'dispatched'; return their ids and signatures.
-- A rate (rate_int: seconds between admissions, burst 1) admits one at a time and notes when the next may
-- come (m._wake). A pooled swarm admits only with pool grants (the grant ids, given by grant.lua): what it
-- could admit beyond them is its demand on the pool (m._pool_want), settled by the caller (F1, F3).
local function admit(m, t, grants)
  if m.state ~= 'running' or m.paused == 1 or m.queued <= 0 then return {}, {} end
  local free = m.limit - m.dispatched - m.running
  if free <= 0 then return {}, {} end
  local n = math.min(free, m.queued)
  if m.rate_int > 0 then
    if t < m.tat then m._wake = m.tat; return {}, {} end
    n = 1
  end
  if m.pool_on == 1 then
    local have = grants and #grants or 0
    if have < n then m._pool_want = n - have end
    n = math.min(n, have)
  end
  if n <= 0 then return {}, {} end
  local ids = redis.call('LPOP', K_QUEUE, n)
  if not ids then return {}, {} end
  local sigs = {}
  for i = 1, #ids, CHUNK do
    local part = redis.call('HMGET', K_MEMBERS, unpack(ids, i, math.min(i + CHUNK - 1, #ids)))
    for _, sig in ipairs(part) do sigs[#sigs + 1] = sig end
  end
  local st, z = {}, {}
  local deadline = dispatch_deadline(m, t)
  for i, id in ipairs(ids) do
    st[#st + 1] = id; st[#st + 1] = 'd|0|0|||' .. t .. '|' .. (grants and grants[i] or '')
    z[#z + 1] = deadline; z[#z + 1] = id
  end
  bulk('HSET', K_MSTATE, st)
  bulk('ZADD', K_TOKENS, z)
  incr(m, 'queued', -#ids)
  incr(m, 'dispatched', #ids)
  incr(m, 'admitted', #ids)
  if m.rate_int > 0 then
    set(m, 'tat', math.max(m.tat, t) + m.rate_int)
    if m.queued > 0 then m._wake = m.tat end
  end
  return ids, sigs
end

-- Admit after members ended (report.lua). A pooled swarm its pool lets pass tokens (pass > 0: it was the
-- only swarm using the pool, docs/pools.md) admits with the grants its ended members give back, up to its
-- budget, instead of giving them back and asking again: the grant moves from one member's owner record to
-- the next one's in this script, so the pool's count of tokens in use never changes. When every freed slot
-- was filled that way, the swarm's demand did not grow (its queue only shrank) and the pool still holds a
-- demand at least as high: nothing is left to settle, the transition costs no pool round trip.
local function admit_passing(m, t)
  if m.pool_on ~= 1 or m.pass <= 0 or #m._released == 0 then return admit(m, t) end
  local passed = {}
  for _ = 1, math.min(m.pass, #m._released) do passed[#passed + 1] = table.remove(m._released) end
  local ids, sigs = admit(m, t, passed)
  for i = #ids + 1, #passed do m._released[#m._released + 1] = passed[i] end
  incr(m, 'pass', -#ids)
  if #m._released == 0 and #ids == m._freed then m._pool_want = 0 end
  return ids, sigs
end

-- A pool's decision about passing (grant.lua, nopass.lua), made at its generation gen: applied unless the
-- swarm already applied a later one (two processes may deliver a pool's decisions out of order).
local function set_pass(m, budget, gen)
  if gen < m.pgen then return end
  set(m, 'pass', budget)
  set(m, 'pgen', gen)
end

-- A started, closed swarm with nothing left to run succeeds; returns 's' to the one caller that decided.
local function maybe_finish(m, t)
  if m.state == 'running' and m.closed == 1
      and m.registered + m.queued + m.dispatched + m.running == 0 then
    finish(m, t, 'succeeded')
    return 's'
  end
  return ''
end

-- Members holding a token, as 'index:step': the step to revoke, i.e. the step of a running member that
-- holds the lease (a chain member's current step), the member id for a dispatched one (the start gate
-- drops any of its steps once the swarm ended).
local function token_holders(t)
  local out = {}
  for _, idx in ipairs(redis.call('ZRANGEBYSCORE', K_TOKENS, '-inf', '(+inf')) do
    local step = FINAL_STEP
    local st, o = get_member(idx, t)
    if st == 'r' then step = o.s end
    out[#out + 1] = idx .. ':' .. string.format('%d', step)
  end
  return out
end

-- A member (owner record o) gave its token back (finished, cancelled): its pool grant, if any, goes back
-- to the pool (the caller settles m._released with the pool). The caller overwrites its mstate entry
-- (ended()), which drops the owner record.
local function release(m, idx, o)
  m._freed = m._freed + 1
  if o and o.g ~= '' then m._released[#m._released + 1] = o.g end
  redis.call('ZREM', K_TOKENS, idx)
end

-- What the caller must settle with the pool and the due index after this transition: the swarm's
-- demand on its pool, when a rate lets the next member in (''), whether it ended, grants given back,
-- its pool's name ('' when none) and its weight there.
local function flow(m)
  local ended = 0
  if m._finished_now then ended = 1 end
  local pool = m.pool_on == 1 and m.pool or ''
  return {tostring(m._pool_want or 0), m._wake and tostring(m._wake) or '', ended, m._released, pool,
    tostring(math.max(1, m.weight))}
end

-- A member ended in state kind ('s' | 'f' | 'c'): record it where members(state=...) finds it.
local function ended(idx, kind)
  redis.call('HSET', K_MSTATE, idx, kind)
  redis.call('ZADD', K_ENDED[kind], idx, idx)
end

-- Mark members cancelled in bulk (chunked: Lua's unpack has a small stack limit).
local function cancel_all(ids)
  local st, z = {}, {}
  for _, idx in ipairs(ids) do
    st[#st + 1] = idx; st[#st + 1] = 'c'
    z[#z + 1] = idx; z[#z + 1] = idx
  end
  if #ids > 0 then
    bulk('HSET', K_MSTATE, st)
    bulk('ZADD', K_ENDED.c, z)
  end
end

-- End the swarm early (failure threshold or cancel): cancel what never got a token (queued members, and
-- registered ones: added with add_task, or given to swarm() when it never started).
local function stop_early(m, t, state)
  incr(m, 'cancelled', m.registered + m.queued)
  set(m, 'registered', 0)
  set(m, 'queued', 0)
  cancel_all(redis.call('LRANGE', K_QUEUE, 0, -1))
  cancel_all(redis.call('ZRANGEBYSCORE', K_REG, 0, '+inf'))
  if m.state == 'pending' then
    local initial = {}
    for i = 0, m.n_initial - 1 do initial[#initial + 1] = tostring(i) end
    cancel_all(initial)
  end
  redis.call('DEL', K_QUEUE, K_REG)
  finish(m, t, state)
end

local function ctx_if(want, n)
  if want == '1' and n > 0 then return redis.call('HGET', K_META, 'ctx') end
  return false
end
