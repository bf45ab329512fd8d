-- pool/configure.lua: set a pool's limit (0: unlimited) and rate (seconds between grants, 0: none); raising
-- them gives tokens out at once; lowering never takes a token back (F1, F4).
-- KEYS: see pool/_lib.lua
-- ARGV[1] limit   ARGV[2] rate_int   ARGV[3] the rate as given ('10/s'; '' for none)
-- Returns: see settled() in pool/_lib.lua
local t = now()
redis.call('HSET', K_META, 'limit', ARGV[1], 'rate_int', ARGV[2], 'rate', ARGV[3])
local grants, wake = distribute(t)
return settled(t, grants, wake, 0)
