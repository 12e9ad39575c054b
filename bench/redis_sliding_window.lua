-- The original design's limiter: one sorted set per key, scored by time.
-- KEYS[1] the key; ARGV[1] window in µs; ARGV[2] limit. Returns 0 when the
-- request is admitted (and recorded), 1 when it must wait.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
    redis.call('ZADD', KEYS[1], now, now .. ':' .. math.random(1, 1000000000))
    redis.call('PEXPIRE', KEYS[1], math.floor(window / 1000) + 1000)
    return 0
end
return 1
