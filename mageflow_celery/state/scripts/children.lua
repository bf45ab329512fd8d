-- children.lua: a nested swarm (a member of this swarm) was started: remember it, so pause, resume and
-- cancel of this swarm reach it; say whether this swarm is paused or ended (the child starts the same way).
-- KEYS: see _lib.lua
-- ARGV[1] child swarm id
-- Returns {'ok', state, paused (0|1)} | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
redis.call('SADD', K_CHILDREN, ARGV[1])
return {'ok', m.state, m.paused}
