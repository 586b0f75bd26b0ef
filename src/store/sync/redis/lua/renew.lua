if not redis.call('ZSCORE', KEYS[14], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[14], ARGV[2], ARGV[1])
return 1
