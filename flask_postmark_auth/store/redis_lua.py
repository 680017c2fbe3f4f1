"""The Redis store's Lua scripts, each one atomic on the server; every script is sent with
:data:`HELPERS` in front (see :mod:`.redis` for the layout of values and lists). A script's
keys are of one hash slot whenever the store runs on a Redis Cluster."""

from __future__ import annotations

#: Shared helpers, prefixed to every script: live() reads a value hash, dropping it when
#: expired; gc() sets the native expiry to the logical remaining time (deleting at once when
#: already due); store() writes a value hash; count() counts one hit in a fixed window.
HELPERS = """
local now = tonumber(ARGV[1])
local function live(k)
  local r = redis.call('HMGET', k, 'v', 'e')
  if not r[1] then return nil, nil end
  if r[2] and tonumber(r[2]) <= now then
    redis.call('DEL', k)
    return nil, nil
  end
  return r[1], r[2]
end
local function gc(k, e)
  if not e then
    redis.call('PERSIST', k)
    return
  end
  local ms = math.ceil((tonumber(e) - now) * 1000)
  if ms > 0 then redis.call('PEXPIRE', k, ms) else redis.call('DEL', k) end
end
local function store(k, v, e)
  redis.call('DEL', k)
  if e then redis.call('HSET', k, 'v', v, 'e', e) else redis.call('HSET', k, 'v', v) end
  gc(k, e)
end
local function count(k, window_expiry)
  local v, e = live(k)
  if not v or not e then
    redis.call('DEL', k)
    redis.call('HSET', k, 'v', '1', 'e', window_expiry)
    gc(k, window_expiry)
    return {'1', window_expiry}
  end
  local n = math.floor(tonumber(v) or 0) + 1
  redis.call('HSET', k, 'v', n)
  return {tostring(n), e}
end
local function item_expired(item)
  local e = string.sub(item, 1, string.find(item, '|', 1, true) - 1)
  return e ~= '' and tonumber(e) <= now
end
"""

# ARGV: now, value, expiry ('' = never)
SET = """
store(KEYS[1], ARGV[2], ARGV[3] ~= '' and ARGV[3] or false)
"""

# ARGV: now, value, expiry ('' = never)
ADD = """
if live(KEYS[1]) then return 0 end
store(KEYS[1], ARGV[2], ARGV[3] ~= '' and ARGV[3] or false)
return 1
"""

# ARGV: now
GET = """
local v = live(KEYS[1])
return v or false
"""

# ARGV: now
TTL = """
local v, e = live(KEYS[1])
if not v then return false end
return e or 'inf'
"""

# KEYS: the value key and the list key of one name; ARGV: now (unused)
DELETE = """
redis.call('DEL', KEYS[1], KEYS[2])
"""

# ARGV: now, '1' when an expected value follows, expected
POP = """
local v = live(KEYS[1])
if not v then return false end
if ARGV[2] == '1' and v ~= ARGV[3] then return false end
redis.call('DEL', KEYS[1])
return v
"""

# ARGV: now, then the expiry of a new window for each key
HITS = """
local out = {}
for i, k in ipairs(KEYS) do out[i] = count(k, ARGV[i + 1]) end
return out
"""

# ARGV: now
UNDO_HIT = """
local v = live(KEYS[1])
if not v then return end
local n = math.floor(tonumber(v) or 0) - 1
if n < 0 then n = 0 end
redis.call('HSET', KEYS[1], 'v', n)
"""

# ARGV: now, value, expiry ('' = never), max_items
PUSH = """
local head = redis.call('LINDEX', KEYS[1], 0)
if head and item_expired(head) then redis.call('DEL', KEYS[1]) end
redis.call('LPUSH', KEYS[1], ARGV[3] .. '|' .. ARGV[2])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[4]) - 1)
gc(KEYS[1], ARGV[3] ~= '' and ARGV[3] or false)
"""

# ARGV: now
ITEMS = """
local head = redis.call('LINDEX', KEYS[1], 0)
if not head then return {} end
if item_expired(head) then
  redis.call('DEL', KEYS[1])
  return {}
end
local out = {}
for i, item in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  out[i] = string.sub(item, string.find(item, '|', 1, true) + 1)
end
return out
"""

# KEYS: a batch from SCAN (of one hash slot in a cluster); ARGV: now
PURGE = """
local dropped = 0
for _, k in ipairs(KEYS) do
  local t = redis.call('TYPE', k)['ok']
  if t == 'hash' then
    local e = redis.call('HGET', k, 'e')
    if e and tonumber(e) <= now then
      redis.call('DEL', k)
      dropped = dropped + 1
    end
  elseif t == 'list' then
    local head = redis.call('LINDEX', k, 0)
    if head and item_expired(head) then
      dropped = dropped + redis.call('LLEN', k)
      redis.call('DEL', k)
    end
  end
end
return dropped
"""

# KEYS: a batch from SCAN (of one hash slot in a cluster); ARGV: now (unused)
SIZE = """
local n = 0
for _, k in ipairs(KEYS) do
  local t = redis.call('TYPE', k)['ok']
  if t == 'list' then n = n + redis.call('LLEN', k) elseif t ~= 'none' then n = n + 1 end
end
return n
"""


#: Script name -> source, as :class:`~.redis.RedisStore` registers them.
SCRIPTS = {
    "set": SET,
    "add": ADD,
    "get": GET,
    "ttl": TTL,
    "delete": DELETE,
    "pop": POP,
    "hits": HITS,
    "undo_hit": UNDO_HIT,
    "push": PUSH,
    "items": ITEMS,
    "purge": PURGE,
    "size": SIZE,
}
