local taken = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
for i = 1, #taken, 2 do
  local s = redis.call('ZSCORE', KEYS[1], taken[i])
  if not s or tonumber(s) > tonumber(taken[i + 1]) then
    redis.call('ZADD', KEYS[1], taken[i + 1], taken[i])
  end
end
redis.call('DEL', KEYS[2])
return 1
