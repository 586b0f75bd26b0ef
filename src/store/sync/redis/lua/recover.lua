for _, v in ipairs(redis.call('HVALS', KEYS[5])) do
  local id = split(v)
  redis.call('ZADD', KEYS[14], 0, id)
end
for _, id in ipairs(redis.call('ZRANGE', KEYS[14], 0, -1)) do give_back(id, 0) end
return 1
