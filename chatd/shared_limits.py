"""Rate limits per identity, shared by every connection of it on every worker.

A connection that presented a token may be one of many tabs or devices of one identity, on any
worker: their sends draw from one token bucket in Redis, so more connections buy no more sends.
The connection's own bucket (chatd/ratelimit.py) still applies; when Redis cannot be reached
only that one does.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from chatd.redis_conn import RedisClient

log = logging.getLogger(__name__)

# KEYS[1] the bucket; ARGV: burst, tokens per minute. Redis's clock, so workers on machines
# whose clocks differ share one bucket fairly.
_TAKE = """
local burst = tonumber(ARGV[1])
local per_ms = tonumber(ARGV[2]) / 60000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(v[1]) or burst
local at = tonumber(v[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * per_ms)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / per_ms) + 1000)
return allowed
"""


class IdentityLimits:
    def __init__(self, redis: RedisClient, prefix: str) -> None:
        self._prefix = prefix
        self._take = redis.register_script(_TAKE)

    async def take(self, kind: str, user_id: str, burst: int, per_minute: int) -> bool:
        key = f"{self._prefix}:rate:{kind}:{{{user_id}}}"
        try:
            return bool(await self._take(keys=[key], args=[burst, per_minute]))
        except (RedisError, OSError) as exc:
            log.warning("identity rate limit unavailable (%s)", type(exc).__name__)
            return True
