-- due/reschedule.lua: after looking at an entry, move it to its next time, or drop it when nothing is
-- due any more; unless someone moved it meanwhile (a newer, earlier schedule wins).
-- KEYS[1] due   zset  member -> the next time the reaper must look at it
-- ARGV[1] member   ARGV[2] the score it had when the reaper took it   ARGV[3] the next time ('' = drop)
-- Returns 1 if changed, 0 if someone moved it meanwhile
local current = redis.call('ZSCORE', KEYS[1], ARGV[1])
if current and tonumber(current) ~= tonumber(ARGV[2]) then return 0 end
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return 1
