local id, appt = ARGV[1], ARGV[2]
unrun(id, appt); unqueue(id, appt); drop(id)
redis.call('HSET', KEYS[1], ARGV[5] .. SEP .. appt, ARGV[3])
redis.call('HSET', KEYS[3], ARGV[5], ARGV[4])
local dead = redis.call('HGET', KEYS[16], appt)
if dead then
  redis.call('ZREM', KEYS[15], dead); redis.call('HDEL', KEYS[9], dead); redis.call('HDEL', KEYS[8], dead)
  redis.call('HDEL', KEYS[16], appt)
end
return 1
