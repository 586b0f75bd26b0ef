local id = ARGV[1]
if not redis.call('ZSCORE', KEYS[15], id) then return false end
local appt, h = split(redis.call('HGET', KEYS[8], id))
redis.call('ZREM', KEYS[15], id)
if redis.call('HGET', KEYS[16], appt) == id then redis.call('HDEL', KEYS[16], appt) end
if redis.call('HGET', KEYS[4], appt) or redis.call('HGET', KEYS[5], appt) then
  redis.call('HDEL', KEYS[9], id); redis.call('HDEL', KEYS[8], id)
  return appt
end
redis.call('ZADD', KEYS[6], ARGV[2], id)
redis.call('ZADD', KEYS[10], ARGV[4], id)
redis.call('HSET', KEYS[4], appt, id .. SEP .. h)
redis.call('HSET', KEYS[9], id, ARGV[3])
return appt
