-- members.lua: one page of a swarm's members, in member order (queued ones: in queue order), optionally
-- only those in one state. The cost follows the page size (and max_concurrency for running/dispatched),
-- never the swarm's size. Reads only.
-- KEYS: see _lib.lua
-- ARGV[1] state ('' | 'registered' | 'queued' | 'dispatched' | 'running' | 'succeeded' | 'failed' |
--   'cancelled')   ARGV[2] offset   ARGV[3] limit
-- Returns {'ok', {idx, mstate_letter, sig, error_record_or_false, ...}} | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
local want, offset, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ids = {}
local function page_of(list)
  for i = offset + 1, math.min(offset + limit, #list) do ids[#ids + 1] = list[i] end
end
if want == '' then
  for i = offset, math.min(offset + limit, m.total) - 1 do ids[#ids + 1] = tostring(i) end
elseif want == 'succeeded' or want == 'failed' or want == 'cancelled' then
  local key = K_ENDED[string.sub(want, 1, 1) == 's' and 's' or (want == 'failed' and 'f' or 'c')]
  ids = redis.call('ZRANGEBYSCORE', key, 0, '+inf', 'LIMIT', offset, limit)
elseif want == 'queued' then
  ids = redis.call('LRANGE', K_QUEUE, offset, offset + limit - 1)
elseif want == 'running' or want == 'dispatched' then
  local want_letter = want == 'running' and 'r' or 'd'
  local holders = redis.call('ZRANGEBYSCORE', K_TOKENS, '-inf', '(+inf')
  local found = {}
  for _, idx in ipairs(holders) do
    if letter(redis.call('HGET', K_MSTATE, idx)) == want_letter then found[#found + 1] = tonumber(idx) end
  end
  table.sort(found)
  for i, idx in ipairs(found) do found[i] = tostring(idx) end
  page_of(found)
elseif want == 'registered' then
  local initial = m.state == 'pending' and m.n_initial or 0
  for i = offset, math.min(offset + limit, initial) - 1 do ids[#ids + 1] = tostring(i) end
  local rest = limit - #ids
  if rest > 0 then
    local from = math.max(0, offset - initial)
    for _, idx in ipairs(redis.call('ZRANGEBYSCORE', K_REG, 0, '+inf', 'LIMIT', from, rest)) do
      ids[#ids + 1] = idx
    end
  end
end
local out = {}
if #ids > 0 then
  local letters = redis.call('HMGET', K_MSTATE, unpack(ids))
  local sigs = redis.call('HMGET', K_MEMBERS, unpack(ids))
  local errs = redis.call('HMGET', K_ERRORS, unpack(ids))
  for i, idx in ipairs(ids) do
    local st = letter(letters[i]) or ''
    -- a member given to swarm() has no letter until admitted: queued once the swarm started
    if st == '' and tonumber(idx) < m.n_initial and m.state ~= 'pending' then st = 'q' end
    out[#out + 1] = idx
    out[#out + 1] = st
    out[#out + 1] = sigs[i] or ''
    out[#out + 1] = errs[i] or false
  end
end
return {'ok', out}
