"""The Redis store's Lua scripts, each one atomic on the server; every script is sent with
:data:`HELPERS` in front (see :mod:`.redis` for the layout of values and lists). A script's
keys are of one hash slot whenever the store runs on a Redis Cluster."""

from __future__ import annotations

#: Shared helpers, prefixed to every script. ``ARGV[1]`` is ``now``, followed (after a
#: ``\\31``) by the field of each key of ``KEYS`` when some are members of a group (see
#: :func:`.base.member`): ``''`` for a plain name, whose value is a hash ``{v, e}``; a
#: member is the field of its group's hash, holding ``"<e>|<v>"`` with ``e`` the expiry
#: in milliseconds, base 36 (kept to the millisecond: a group stays small), which split()
#: reads into value and expiry. The other helpers take a key's index: read() its value and
#: expiry; live() the same, dropping it when
#: expired; gc() sets the native expiry (for a group, at least the member's); store()
#: writes a value; put() replaces the value and keeps the expiry; count() counts one hit
#: in a fixed window.
HELPERS = """
local now
local FIELDS = {}
do
  local head = ARGV[1]
  local at = string.find(head, '\\31', 1, true)
  if at then
    now = tonumber(string.sub(head, 1, at - 1))
    local i = 1
    for f in string.gmatch(string.sub(head, at + 1) .. '\\31', '([^\\31]*)\\31') do
      FIELDS[i] = f
      i = i + 1
    end
  else
    now = tonumber(head)
  end
end
local DIGITS = '0123456789abcdefghijklmnopqrstuvwxyz'
local function ms36(e)
  local n = math.floor(tonumber(e) * 1000 + 0.5)
  local out = ''
  repeat
    local d = n % 36
    out = string.sub(DIGITS, d + 1, d + 1) .. out
    n = (n - d) / 36
  until n == 0
  return out
end
local function seconds36(e)
  if e == '' then return nil end
  return tostring(tonumber(e, 36) / 1000)
end
local function field(i)
  local f = FIELDS[i]
  if f and f ~= '' then return f end
  return nil
end
local function split(raw)
  local bar = string.find(raw, '|', 1, true)
  return string.sub(raw, bar + 1), seconds36(string.sub(raw, 1, bar - 1))
end
local function read(i)
  local f = field(i)
  if f then
    local raw = redis.call('HGET', KEYS[i], f)
    if not raw then return nil, nil end
    return split(raw)
  end
  local r = redis.call('HMGET', KEYS[i], 'v', 'e')
  if not r[1] then return nil, nil end
  return r[1], (r[2] or nil)
end
local function drop(i)
  local f = field(i)
  if f then redis.call('HDEL', KEYS[i], f) else redis.call('DEL', KEYS[i]) end
end
local function live(i)
  local v, e = read(i)
  if not v then return nil, nil end
  if e and tonumber(e) <= now then
    drop(i)
    return nil, nil
  end
  return v, e
end
local function gc(i, e)
  local k = KEYS[i]
  if not e then
    if not field(i) then redis.call('PERSIST', k) end
    return
  end
  local ms = math.ceil((tonumber(e) - now) * 1000)
  if ms <= 0 then
    drop(i)
  elseif field(i) then
    local left = redis.call('PTTL', k)
    if left < ms then redis.call('PEXPIRE', k, ms) end
  else
    redis.call('PEXPIRE', k, ms)
  end
end
local function put(i, v, e)
  local f = field(i)
  if f then
    redis.call('HSET', KEYS[i], f, (e and ms36(e) or '') .. '|' .. v)
  else
    redis.call('HSET', KEYS[i], 'v', v)
  end
end
local function store(i, v, e)
  if field(i) then
    put(i, v, e)
  else
    redis.call('DEL', KEYS[i])
    if e then
      redis.call('HSET', KEYS[i], 'v', v, 'e', e)
    else
      redis.call('HSET', KEYS[i], 'v', v)
    end
  end
  gc(i, e)
end
local function count(i, window_expiry)
  local v, e = live(i)
  if not v or not e then
    store(i, '1', window_expiry)
    return {'1', window_expiry}
  end
  local n = math.floor(tonumber(v) or 0) + 1
  put(i, tostring(n), e)
  return {tostring(n), e}
end
local function item_expired(item)
  local e = string.sub(item, 1, string.find(item, '|', 1, true) - 1)
  return e ~= '' and tonumber(e) <= now
end
"""

# ARGV: now, value, expiry ('' = never)
SET = """
store(1, ARGV[2], ARGV[3] ~= '' and ARGV[3] or nil)
"""

# ARGV: now, value, expiry ('' = never)
ADD = """
if live(1) then return 0 end
store(1, ARGV[2], ARGV[3] ~= '' and ARGV[3] or nil)
return 1
"""

# ARGV: now
GET = """
local v = live(1)
return v or false
"""

# ARGV: now
TTL = """
local v, e = live(1)
if not v then return false end
return e or 'inf'
"""

# KEYS: the value key and the list key of one name (or a member's group); ARGV: now
DELETE = """
if field(1) then drop(1) else redis.call('DEL', KEYS[1], KEYS[2]) end
"""

# ARGV: now, '1' when an expected value follows, expected
POP = """
local v = live(1)
if not v then return false end
if ARGV[2] == '1' and v ~= ARGV[3] then return false end
drop(1)
return v
"""

# ARGV: now, then the expiry of a new window for each key
HITS = """
local out = {}
for i = 1, #KEYS do out[i] = count(i, ARGV[i + 1]) end
return out
"""

# ARGV: now
UNDO_HIT = """
local v, e = live(1)
if not v then return end
local n = math.floor(tonumber(v) or 0) - 1
if n < 0 then n = 0 end
put(1, tostring(n), e)
"""

# ARGV: now, value, expiry ('' = never), max_items
PUSH = """
local head = redis.call('LINDEX', KEYS[1], 0)
if head and item_expired(head) then redis.call('DEL', KEYS[1]) end
redis.call('LPUSH', KEYS[1], ARGV[3] .. '|' .. ARGV[2])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[4]) - 1)
gc(1, ARGV[3] ~= '' and ARGV[3] or nil)
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
  if t == 'hash' and string.sub(k, -2) == ':g' then
    local all = redis.call('HGETALL', k)
    for j = 1, #all, 2 do
      local _, e = split(all[j + 1])
      if e and tonumber(e) <= now then
        redis.call('HDEL', k, all[j])
        dropped = dropped + 1
      end
    end
  elseif t == 'hash' then
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
  if t == 'list' then
    n = n + redis.call('LLEN', k)
  elseif t == 'hash' and string.sub(k, -2) == ':g' then
    n = n + redis.call('HLEN', k)
  elseif t ~= 'none' then
    n = n + 1
  end
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
