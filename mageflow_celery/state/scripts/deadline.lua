-- deadline.lua: the reaper looked at members whose deadline passed and will look again later (a
-- member retrying, a dispatched member still waiting in the broker): move their deadlines.
-- KEYS: see _lib.lua
-- ARGV triples: index, expected member state ('d' | 'r'), new deadline (the state Redis's clock)
-- Returns {'ok', n_moved} | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
local moved = 0
for i = 1, #ARGV, 3 do
  local idx = ARGV[i]
  if letter(redis.call('HGET', K_MSTATE, idx)) == ARGV[i + 1] then
    redis.call('ZADD', K_TOKENS, 'XX', ARGV[i + 2], idx)
    moved = moved + 1
  end
end
return {'ok', moved}
