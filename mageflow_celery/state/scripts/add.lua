-- add.lua: register new members (add_task, add_tasks), optionally queueing them at once (run_in_swarm);
-- admit. All or nothing: a batch that would go beyond max_task_allowed writes nothing.
-- KEYS: see _lib.lua
-- ARGV[1] mode ('register'|'run')   ARGV[2] want_ctx   ARGV[3] close_on_max ('1'|'0')   ARGV[4 ..] blobs
-- Returns (flow: see _lib.lua) {'ok', fin, ids, sigs, ctx, {}, first_index, closed_now (0|1)} | {'closed'} | {'toomany'} | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
local n = #ARGV - 3
if m.max_tasks > 0 and m.total + n > m.max_tasks then return {'toomany'} end
if m.closed == 1 or is_finished(m) then return {'closed'} end
local t = now()
local first = m.total
local fields, ids = {}, {}
for i = 1, n do
  local idx = tostring(first + i - 1)
  fields[#fields + 1] = idx; fields[#fields + 1] = ARGV[3 + i]
  ids[#ids + 1] = idx
end
if n > 0 then bulk('HSET', K_MEMBERS, fields) end
incr(m, 'total', n)
if ARGV[1] == 'run' then
  local st = {}
  for _, idx in ipairs(ids) do st[#st + 1] = idx; st[#st + 1] = 'q' end
  if n > 0 then bulk('HSET', K_MSTATE, st) end
  push_queue(m, ids)
else
  local z = {}
  for _, idx in ipairs(ids) do z[#z + 1] = idx; z[#z + 1] = idx end
  if n > 0 then bulk('ZADD', K_REG, z) end
  incr(m, 'registered', n)
end
local closed_now = 0
if ARGV[3] == '1' and m.max_tasks > 0 and m.total >= m.max_tasks then set(m, 'closed', 1); closed_now = 1 end
local aids, sigs = admit(m, t)
local fin = maybe_finish(m, t)
save_meta(m, t)
return {'ok', fin, aids, sigs, ctx_if(ARGV[2], #aids), {}, flow(m), first, closed_now}
