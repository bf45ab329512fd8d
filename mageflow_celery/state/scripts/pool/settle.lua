-- pool/settle.lua: one swarm's news for its pool: grants it gave back (members that ended, grants it could
-- not use) and its current demand; then the pool gives its free tokens out (round robin, rate).
-- KEYS: see pool/_lib.lua
-- ARGV[1] swarm id ('' for none: the pool's limit or rate changed, or its rate's slot came)
-- ARGV[2] its demand (members it could admit now)   ARGV[3] its weight   ARGV[4 ..] grant ids given back
-- Returns: see settled() in pool/_lib.lua
local t = now()
for i = 4, #ARGV do unhold(ARGV[i]) end
if ARGV[1] ~= '' then want(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])) end
local grants, wake = distribute(t)
return settled(t, grants, wake, 0)
