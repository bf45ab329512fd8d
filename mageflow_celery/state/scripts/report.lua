-- report.lua: record members' final outcomes, release their tokens, admit the next members and,
-- when the swarm is done (or reached its failure threshold), elect the one caller that finalizes.
-- A member already finished is skipped, so a second report of the same outcome changes nothing.
-- KEYS: see _lib.lua
-- ARGV[1] want_ctx   then triples: ARGV[i] index, ARGV[i+1] kind ('s' ok | 'f' failed | 'x' revoked),
--   ARGV[i+2] payload (encoded result, or JSON error record)
-- Returns (flow: see _lib.lua) {'ok', fin ('' | 's' | 'f'), ids, sigs, ctx, revoke ('index:step'), n_recorded} | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
local t = now()
local fin = ''
local revoke = {}
local recorded = 0
for i = 2, #ARGV, 3 do
  local idx, kind, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local st, o = get_member(idx, t)
  if st == 'd' or st == 'r' then
    recorded = recorded + 1
    local was_finished = is_finished(m)
    release(m, idx, o)
    incr(m, st == 'd' and 'dispatched' or 'running', -1)
    if kind == 'x' and m.state == 'cancelled' then kind = 'c' elseif kind == 'x' then kind = 'f' end
    ended(idx, kind)
    if kind == 's' then
      incr(m, 'succeeded', 1)
      if not was_finished then redis.call('HSET', K_RESULTS, idx, payload) end
    elseif kind == 'c' then
      incr(m, 'cancelled', 1)
    else
      incr(m, 'failed', 1)
      if m.nerr < m.max_err then
        redis.call('HSET', K_ERRORS, idx, payload)
        incr(m, 'nerr', 1)
      end
      if m.state == 'running' and m.stop_after > 0 and m.failed >= m.stop_after then
        stop_early(m, t, 'failed')
        fin = 'f'
        if m.revoke_on_fail == 1 then revoke = token_holders(t) end
      end
    end
  end
end
local ids, sigs = admit_passing(m, t)
if fin == '' then fin = maybe_finish(m, t) end
save_meta(m, t)
return {'ok', fin, ids, sigs, ctx_if(ARGV[1], #ids), revoke, flow(m), recorded}
