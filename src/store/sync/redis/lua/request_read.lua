if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], ARGV[1]) ~= '1' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
for i = 3, #ARGV do redis.call('HSET', KEYS[1], ARGV[1] .. '\31' .. ARGV[i], '') end
return 1
