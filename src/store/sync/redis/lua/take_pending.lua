local taken = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local ids = {}
for i = 1, #taken, 2 do
  redis.call('ZADD', KEYS[2], 'NX', taken[i + 1], taken[i])
  redis.call('ZREM', KEYS[1], taken[i])
  table.insert(ids, taken[i])
end
return ids
