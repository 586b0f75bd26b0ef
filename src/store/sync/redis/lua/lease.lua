local now, max = ARGV[1], tonumber(ARGV[2])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[14], '-inf', now, 'LIMIT', 0, 100)) do
  give_back(id, now)
end
local out, n = {}, 0
for lane = 6, 7 do
  if n >= max then break end
  -- At most one job runs per appointment, and few run at once: looking a little past `max`
  -- finds every job that may go.
  local ids = redis.call('ZRANGEBYSCORE', KEYS[lane], '-inf', now, 'LIMIT', 0, max + 64)
  for _, id in ipairs(ids) do
    if n >= max then break end
    local m = redis.call('HGET', KEYS[8], id)
    if not m then
      redis.call('ZREM', KEYS[lane], id)
    else
      local appt, h = split(m)
      if not redis.call('HGET', KEYS[5], appt) then
        unqueue(id, appt)
        redis.call('HSET', KEYS[5], appt, id .. SEP .. h)
        redis.call('ZADD', KEYS[14], ARGV[3], id)
        local lname = 'fast'
        if lane == 7 then lname = 'sweep' end
        table.insert(out, redis.call('HGET', KEYS[9], id) or '')
        table.insert(out, lname)
        table.insert(out, tostring(redis.call('SISMEMBER', KEYS[13], id)))
        n = n + 1
      end
    end
  end
end
return out
