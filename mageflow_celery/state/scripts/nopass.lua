-- nopass.lua: the swarm's pool has another swarm to serve (or a new limit or rate): its ended members give
-- their grants back to the pool again instead of passing them on (docs/pools.md).
-- KEYS: see _lib.lua
-- ARGV[1] the pool's generation of that decision
-- Returns {'ok'} | {'unknown'} (the swarm expired: nothing is written)
local m = load_meta()
if not m then return {'unknown'} end
set_pass(m, 0, tonumber(ARGV[1]))
save_meta(m, now())
return {'ok'}
