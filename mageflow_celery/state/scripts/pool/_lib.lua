-- pool/_lib.lua: shared by the scripts of one pool (prepended by scripts/__init__.py). A pool's keys share
-- its own hash tag {pool:<name>}; no script touches a swarm's keys (F5).
-- KEYS[1] meta     hash  limit (0: unlimited), rate_int (seconds between grants, 0: none), tat (the rate's
--                        next slot), seq (last grant id), passer (the swarm that may pass tokens on, '' for
--                        none), pgen (generation of the passing decisions)
-- KEYS[2] holders  hash  grant id -> 'swarm id|granted at': the pool's tokens in use
-- KEYS[3] ring     list  swarms waiting for tokens, in round-robin order (each once)
-- KEYS[4] wants    hash  swarm id -> members it could admit if granted (its demand)
-- KEYS[5] weights  hash  swarm id -> its weight (tokens per turn)
-- KEYS[6] credit   hash  swarm id -> tokens left in its current turn
-- KEYS[7] held     hash  swarm id -> how many of holders' grants it holds (a pool that already had grants when
--                        this hash came in counts them from their release: a count never goes below 0)
local K_META, K_HOLDERS, K_RING, K_WANTS, K_WEIGHTS, K_CREDIT = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local K_HELD = KEYS[7]

local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function num(key, field)
  return tonumber(redis.call('HGET', key, field)) or 0
end

-- A grant made to a swarm, and one freed (given back, or dropped by the reaper): holders and held agree.
local function hold(g, swarm, t)
  redis.call('HSET', K_HOLDERS, g, swarm .. '|' .. t)
  redis.call('HINCRBY', K_HELD, swarm, 1)
end

local function unhold(g)
  local v = redis.call('HGET', K_HOLDERS, g)
  if not v then return end
  redis.call('HDEL', K_HOLDERS, g)
  local swarm = string.match(v, '^(.*)|[^|]*$')
  if swarm and redis.call('HINCRBY', K_HELD, swarm, -1) <= 0 then redis.call('HDEL', K_HELD, swarm) end
end

-- A swarm stops waiting (its demand is met, it ended, or it said it wants nothing).
local function unwait(swarm)
  redis.call('HDEL', K_WANTS, swarm)
  redis.call('HDEL', K_WEIGHTS, swarm)
  redis.call('HDEL', K_CREDIT, swarm)
  redis.call('LREM', K_RING, 0, swarm)
end

-- A swarm's current demand (members it could admit now) and weight.
local function want(swarm, n, weight)
  if n <= 0 then unwait(swarm); return end
  if redis.call('HEXISTS', K_WANTS, swarm) == 0 then redis.call('RPUSH', K_RING, swarm) end
  redis.call('HSET', K_WANTS, swarm, n)
  redis.call('HSET', K_WEIGHTS, swarm, weight)
end

-- Give free tokens to the waiting swarms in weighted round-robin (F2): the swarm at the head of the ring
-- gets up to its weight in tokens, one at a time, then goes to the back. A rate (F3) lets one token out per
-- rate_int seconds (burst 1, on the state Redis's clock). Returns {swarm, grant id, ...} and the time the
-- rate lets the next token out when it holds one back ('' otherwise).
local function distribute(t)
  local limit, rate, tat = num(K_META, 'limit'), num(K_META, 'rate_int'), num(K_META, 'tat')
  local free = limit > 0 and (limit - redis.call('HLEN', K_HOLDERS)) or math.huge
  local out, wake = {}, ''
  while free > 0 do
    local swarm = redis.call('LINDEX', K_RING, 0)
    if not swarm then break end
    local demand = num(K_WANTS, swarm)
    if demand <= 0 then
      unwait(swarm)
    else
      if rate > 0 then
        if t < tat then wake = tostring(tat); break end
        tat = math.max(tat, t) + rate
      end
      local g = tostring(redis.call('HINCRBY', K_META, 'seq', 1))
      hold(g, swarm, t)
      out[#out + 1] = swarm; out[#out + 1] = g
      free = free - 1
      demand = demand - 1
      local weight = math.max(1, num(K_WEIGHTS, swarm))
      local credit = tonumber(redis.call('HGET', K_CREDIT, swarm)) or weight
      credit = credit - 1
      if demand <= 0 then
        unwait(swarm)
      else
        redis.call('HSET', K_WANTS, swarm, demand)
        if credit <= 0 then
          redis.call('LMOVE', K_RING, K_RING, 'LEFT', 'RIGHT')
          redis.call('HSET', K_CREDIT, swarm, weight)
        else
          redis.call('HSET', K_CREDIT, swarm, credit)
        end
      end
    end
  end
  if rate > 0 then redis.call('HSET', K_META, 'tat', tostring(tat)) end
  return out, wake
end

-- Token passing (docs/pools.md): while one swarm alone uses a pool without a rate (it is the only one granted
-- or waiting, and no other swarm holds a token), its ended members pass their grants on to its next members
-- without asking the pool. The pool names that swarm its passer; when another swarm shows up (or the limit
-- or rate changes) the passer is told to stop. A passer that holds no token any more (it finished) needs no
-- stop: it can pass only grants it holds, and any grant comes with a new decision. Returns the swarm to give
-- a pass budget with its grants ('' for none), the swarm to stop ('' for none: stop is the one the caller
-- already took away) and the decision's generation.
local function passing(grants, stop)
  local passer = redis.call('HGET', K_META, 'passer') or ''
  local seen, many = nil, false
  local waiting = redis.call('LLEN', K_RING)
  if waiting > 1 then many = true elseif waiting == 1 then seen = redis.call('LINDEX', K_RING, 0) end
  local granted = {}
  for i = 1, #grants, 2 do
    granted[grants[i]] = true
    if seen == nil then seen = grants[i] elseif seen ~= grants[i] then many = true end
  end
  local holds = passer ~= '' and redis.call('HEXISTS', K_HELD, passer) == 1
  local new = holds and passer or ''
  if many or num(K_META, 'rate_int') > 0 then new = '' elseif seen then new = seen end
  if new ~= '' then
    local n_held = redis.call('HLEN', K_HELD)
    if n_held > 1 or (n_held == 1 and redis.call('HEXISTS', K_HELD, new) == 0) then new = '' end
  end
  if new ~= passer then
    if holds then stop = passer end
    redis.call('HSET', K_META, 'passer', new)
    redis.call('HINCRBY', K_META, 'pgen', 1)
  end
  local pass_to = ''
  if new ~= '' and granted[new] then pass_to = new end
  return pass_to, stop, tostring(num(K_META, 'pgen'))
end

-- The reply of every script that hands tokens out: {{swarm, grant id, ...}, wake ('' or when the rate lets
-- the next token out), in_use, limit, n dropped, granted at (the pool's clock; a swarm refuses grants older
-- than the reaper's grace, docs/pools.md), pass_to, stop, generation (see passing())}. stop: a passer the
-- calling script already took away ('' for none).
local function settled(t, grants, wake, dropped, stop)
  -- an idle pool starts its counts afresh (a worker of an older version frees grants without counting)
  if redis.call('HLEN', K_HOLDERS) == 0 then redis.call('DEL', K_HELD) end
  local pass_to, stopped, gen = passing(grants, stop or '')
  return {grants, wake, redis.call('HLEN', K_HOLDERS), num(K_META, 'limit'), dropped, tostring(t), pass_to, stopped,
    gen}
end
