-- due/peek.lua: the swarms (and pools) the reaper must look at now, by the state Redis's clock.
-- KEYS[1] due   zset  member -> the next time the reaper must look at it
-- ARGV[1] most entries to return
-- Returns {now, {member, score, ...}}
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
return {tostring(now), redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[1]))}
