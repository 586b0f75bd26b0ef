local function held()
  local r = redis.call('HGET', KEYS[1], ARGV[1])
  if not r then return '' end
  local ok, rec = pcall(cjson.decode, r)
  if not ok or type(rec) ~= 'table' or type(rec.delivered) ~= 'string' then return '' end
  return rec.delivered
end
redis.call('SADD', KEYS[2], ARGV[9])
local appt, h = ARGV[2], ARGV[5]
local qid, qh = job_of(KEYS[4], appt)
local rid, rh = job_of(KEYS[5], appt)
if ARGV[10] ~= '1' and h == held() then
  if qid then unqueue(qid, appt); drop(qid); qid = nil end
  if not (rid and rh ~= h) then return 0 end
end
if (qid and qh == h) or (rid and rh == h) then return 0 end
local lane = ARGV[8]
if qid then
  if redis.call('ZSCORE', KEYS[10], qid) then lane = 'fast' end
  unqueue(qid, appt); drop(qid)
end
local zq, zc = KEYS[6], KEYS[10]
if lane == 'sweep' then zq, zc = KEYS[7], KEYS[11] end
redis.call('ZADD', zq, ARGV[6], ARGV[3])
redis.call('ZADD', zc, ARGV[7], ARGV[3])
redis.call('HSET', KEYS[4], appt, ARGV[3] .. SEP .. h)
redis.call('HSET', KEYS[8], ARGV[3], appt .. SEP .. h)
redis.call('HSET', KEYS[9], ARGV[3], ARGV[4])
if ARGV[10] == '1' then redis.call('SADD', KEYS[13], ARGV[3]) end
return 1
