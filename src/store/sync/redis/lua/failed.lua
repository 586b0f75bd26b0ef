local id, appt = ARGV[1], ARGV[2]
unrun(id, appt)
if ARGV[4] ~= '' then
  local qid = job_of(KEYS[4], appt)
  if qid and qid ~= id then
    redis.call('SADD', KEYS[13], qid)
    drop(id)
  else
    redis.call('ZREM', KEYS[7], id)
    redis.call('ZADD', KEYS[6], ARGV[4], id)
    local c = redis.call('ZSCORE', KEYS[11], id)
    if c then redis.call('ZREM', KEYS[11], id); redis.call('ZADD', KEYS[10], c, id) end
    redis.call('HSET', KEYS[4], appt, id .. SEP .. ARGV[6])
    redis.call('HSET', KEYS[9], id, ARGV[3])
    redis.call('SADD', KEYS[12], id)
  end
  return 1
end
unqueue(id, appt); drop(id)
local old = redis.call('HGET', KEYS[16], appt)
if old and old ~= id then
  redis.call('ZREM', KEYS[15], old); redis.call('HDEL', KEYS[9], old); redis.call('HDEL', KEYS[8], old)
end
redis.call('HSET', KEYS[8], id, appt .. SEP .. ARGV[6])
redis.call('HSET', KEYS[9], id, ARGV[3])
redis.call('ZADD', KEYS[15], ARGV[5], id)
redis.call('HSET', KEYS[16], appt, id)
local excess = redis.call('ZCARD', KEYS[15]) - tonumber(ARGV[7])
if excess > 0 then
  local gone = redis.call('ZPOPMIN', KEYS[15], excess)
  for i = 1, #gone, 2 do
    local g = gone[i]
    local m = redis.call('HGET', KEYS[8], g)
    if m then
      local a = split(m)
      if redis.call('HGET', KEYS[16], a) == g then redis.call('HDEL', KEYS[16], a) end
    end
    redis.call('HDEL', KEYS[9], g); redis.call('HDEL', KEYS[8], g)
  end
  return 2
end
return 1
