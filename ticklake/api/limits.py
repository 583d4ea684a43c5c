"""Per-tenant rate limits: a token bucket per tenant (`requests_per_second` refill, `capacity` burst).

In the serving process by default; shared by every process and machine through Redis when TICKLAKE_REDIS_URL is set
(one atomic Lua script per request, the clock being Redis's own, so servers with skewed clocks agree). When Redis does
not answer, the process's own buckets take over (logged, never silently unlimited) until it answers again.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from ticklake.products.tenants import Tenant

log = logging.getLogger("ticklake.api")

# KEYS[1] the bucket; ARGV rate (tokens/s), capacity. Returns {allowed (0/1), seconds to wait for one token}.
TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1])
local at = tonumber(bucket[2])
if tokens == nil then tokens = capacity; at = now end
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return {allowed, tostring(wait)}
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0  # whole seconds (at least 1 when refused), for the Retry-After header

    @classmethod
    def refused(cls, wait_s: float) -> Verdict:
        return cls(False, max(1, math.ceil(wait_s)))


def _limits(tenant: Tenant) -> tuple[float, int]:
    api = tenant.api
    assert api is not None  # only a tenant with API access is ever authenticated
    return api.requests_per_second, api.capacity


class LocalBuckets:
    """One bucket per tenant in this process (the event loop is its only caller: no lock needed)."""

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # tenant -> (tokens, at)

    def take(self, tenant: Tenant) -> Verdict:
        rate, capacity = _limits(tenant)
        now = self.clock()
        tokens, at = self._buckets.get(tenant.name, (float(capacity), now))
        tokens = min(float(capacity), tokens + max(0.0, now - at) * rate)
        if tokens >= 1:
            self._buckets[tenant.name] = (tokens - 1, now)
            return Verdict(True)
        self._buckets[tenant.name] = (tokens, now)
        return Verdict.refused((1 - tokens) / rate)


class RedisBuckets:
    """The buckets in Redis, shared by every serving process that names the same Redis (and key prefix)."""

    def __init__(self, client, prefix: str, fallback: LocalBuckets | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.script = client.register_script(TOKEN_BUCKET_LUA)
        self.fallback = fallback or LocalBuckets()
        self._warned_at = 0.0

    async def take(self, tenant: Tenant) -> Verdict:
        rate, capacity = _limits(tenant)
        try:
            allowed, wait = await self.script(keys=[f"{self.prefix}rate:{tenant.name}"], args=[rate, capacity])
        except Exception as exc:  # Redis down or refusing: this process's own bucket, said once a minute
            now = time.monotonic()
            if now - self._warned_at > 60:
                self._warned_at = now
                log.warning("rate limits: Redis (TICKLAKE_REDIS_URL) did not answer (%s); this process's own "
                            "buckets apply until it does", type(exc).__name__)
            return self.fallback.take(tenant)
        return Verdict(True) if int(allowed) else Verdict.refused(float(wait))
