-- pool/configure.lua: set a pool's limit (0: unlimited) and rate (seconds between grants, 0: none); raising
-- them gives tokens out at once; lowering never takes a token back (F1, F4). The swarm passing tokens on, if
-- any, stops: it passes only what the pool grants it under the new limit and rate.
-- KEYS: see pool/_lib.lua
-- ARGV[1] limit   ARGV[2] rate_int   ARGV[3] the rate as given ('10/s'; '' for none)
-- Returns: see settled() in pool/_lib.lua
local t = now()
local passer = redis.call('HGET', K_META, 'passer') or ''
if passer ~= '' then redis.call('HINCRBY', K_META, 'pgen', 1) end
redis.call('HSET', K_META, 'limit', ARGV[1], 'rate_int', ARGV[2], 'rate', ARGV[3], 'passer', '')
local grants, wake = distribute(t)
return settled(t, grants, wake, 0, passer)
