local SEP = '\31'
local function split(v)
  local i = string.find(v, SEP, 1, true)
  return string.sub(v, 1, i - 1), string.sub(v, i + 1)
end
local function job_of(key, appt)
  local v = redis.call('HGET', key, appt)
  if not v then return nil, nil end
  return split(v)
end
local function drop(id)
  redis.call('ZREM', KEYS[6], id); redis.call('ZREM', KEYS[7], id)
  redis.call('HDEL', KEYS[8], id); redis.call('HDEL', KEYS[9], id)
  redis.call('ZREM', KEYS[10], id); redis.call('ZREM', KEYS[11], id)
  redis.call('SREM', KEYS[12], id); redis.call('SREM', KEYS[13], id)
  redis.call('ZREM', KEYS[14], id)
end
local function unrun(id, appt)
  local rid = job_of(KEYS[5], appt)
  if rid == id then redis.call('HDEL', KEYS[5], appt) end
  redis.call('ZREM', KEYS[14], id)
end
local function unqueue(id, appt)
  local qid = job_of(KEYS[4], appt)
  if qid == id then redis.call('HDEL', KEYS[4], appt) end
  redis.call('ZREM', KEYS[6], id); redis.call('ZREM', KEYS[7], id)
end
-- A running job back to wait, or dropped for a newer one of its appointment (which then
-- goes whatever the record says: this one may have landed).
local function give_back(id, now)
  redis.call('ZREM', KEYS[14], id)
  local m = redis.call('HGET', KEYS[8], id)
  if not m then return end
  local appt, h = split(m)
  unrun(id, appt)
  local qid = job_of(KEYS[4], appt)
  if qid and qid ~= id then
    redis.call('SADD', KEYS[13], qid)
    drop(id)
  else
    local lane = KEYS[6]
    if redis.call('ZSCORE', KEYS[11], id) then lane = KEYS[7] end
    redis.call('ZADD', lane, now, id)
    redis.call('HSET', KEYS[4], appt, id .. SEP .. h)
  end
end
