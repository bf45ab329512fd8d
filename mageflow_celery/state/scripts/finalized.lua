-- finalized.lua: the elected finalizer published the callbacks; release its claim.
-- KEYS: see _lib.lua
-- Returns {'ok'} | {'noop'} | {'unknown'}
local m = load_meta()
if not m then return {'unknown'} end
if m.fin ~= 'claimed' then return {'noop'} end
redis.call('HSET', K_META, 'fin', 'done')
return {'ok'}
