"""`rate-limit-redis`: one rate limit shared by every worker and gateway instance, kept in Redis.

```hcl
middlewares "api-limit" {
  type      = "rate-limit-redis"
  rate      = 100                          # requests per period (A3S: per second)
  burst     = 50
  redis_url = "redis://127.0.0.1:6379/0"
  # period = "1s", algorithm = "token-bucket" | "fixed-window" | "sliding-window"
  # key = "ip" | "header:X-User" | "jwt:sub", fail_open = true, timeout = "250ms"
}
```

Same options, algorithms, client keys and headers as `rate-limit` (see `stdlib/common/limiters.py`
for the semantics). Each request runs one Lua script in Redis (EVALSHA, falling back to EVAL when
the server answers NOSCRIPT), so the read, the decision and the write are atomic across every
gateway process. The script reads the time with Redis `TIME`, never the gateway's clock, so
instances with skewed clocks still agree. Keys carry a TTL and vanish once idle.

When Redis cannot be reached within `timeout`, `fail_open = true` (the default) lets the request
through, logs a warning (at most once per `retry_interval`) and counts it in the state's
`statistics()`; `fail_open = false` answers 503. After a failure Redis is not asked again for
`retry_interval`, so an outage never adds a timeout to every request.

The Redis client lives in the node's state (kept across reloads, closed when the node goes).
Under asyncio it is redis-py's asyncio client; under trio, where that client cannot run, the
same script goes through redis-py's blocking client in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio

from ...runtime.api import Handler, Request, Response
from ...runtime.errors import ServiceUnavailable
from ..base import BuildContext, MiddlewareKind
from ..common.limiters import (
    Decision,
    LimiterSpec,
    client_key,
    limit_headers,
    too_many_requests,
)
from ..common.redis_scripts import REDIS_ERRORS, RedisHealth, RedisScripts, Script
from ..registry import register
from .schemas.rate_limit_redis import RateLimitRedisConfig

__all__ = ["LUA_SCRIPT", "RateLimitRedis", "RateLimitRedisConfig", "RedisLimiterState"]

# ARGV: algorithm, rate, period (ms), burst. Returns {allowed, limit, remaining, reset_ms, retry_ms}.
# A transcription of TokenBucket / FixedWindow / SlidingWindow in stdlib/common/limiters.py.
LUA_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local key, alg = KEYS[1], ARGV[1]
local rate, period, burst = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if alg == 'token-bucket' then
  local per_ms = rate / period
  local state = redis.call('HMGET', key, 'tokens', 'stamp')
  local tokens, stamp = tonumber(state[1]), tonumber(state[2])
  if tokens == nil then tokens, stamp = burst, now end
  tokens = math.min(burst, tokens + math.max(0, now - stamp) * per_ms)
  stamp = math.max(stamp, now)
  local allowed = 0
  if tokens >= 1 - 1e-9 then allowed = 1; tokens = math.max(0, tokens - 1) end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'stamp', tostring(stamp))
  redis.call('PEXPIRE', key, math.ceil((burst - tokens) / per_ms) + 1000)
  local retry = 0
  if allowed == 0 then retry = (1 - tokens) / per_ms end
  return {allowed, burst, math.floor(tokens + 1e-9), math.ceil((burst - tokens) / per_ms), math.ceil(retry)}
elseif alg == 'fixed-window' then
  local window = math.floor(now / period)
  local wkey = key .. ':' .. window
  local count = tonumber(redis.call('GET', wkey) or '0')
  local allowed = 0
  if count < rate then
    allowed = 1
    count = redis.call('INCR', wkey)
    if count == 1 then redis.call('PEXPIRE', wkey, period + 1000) end
  end
  local reset = math.ceil((window + 1) * period - now)
  local retry = 0
  if allowed == 0 then retry = reset end
  return {allowed, rate, rate - count, reset, retry}
else
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - period)
  local count = redis.call('ZCARD', key)
  local allowed = 0
  if count < rate then
    allowed = 1
    -- Unique even within one microsecond: the count grows with every admission.
    redis.call('ZADD', key, now, string.format('%.3f:%d', now, count))
    count = count + 1
    redis.call('PEXPIRE', key, period + 1000)
  end
  local reset, retry = 0, 0
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if newest[2] then reset = math.ceil(tonumber(newest[2]) + period - now) end
  if allowed == 0 then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    retry = math.ceil(tonumber(oldest[2]) + period - now)
  end
  return {allowed, rate, rate - count, reset, retry}
end
"""


@dataclass(eq=False)
class RedisLimiterState:
    """The Redis connection and the failure accounting of one node."""

    url: str
    timeout: float
    retry_interval: float = 1.0
    redis: RedisScripts = field(init=False)
    health: RedisHealth = field(init=False)
    stats: dict[str, int] = field(
        default_factory=lambda: {"allowed": 0, "refused": 0, "redis_errors": 0, "failed_open": 0}
    )

    def __post_init__(self) -> None:
        self.redis = RedisScripts(self.url, self.timeout)
        self.health = RedisHealth(self.retry_interval)

    async def evaluate(self, key: str, args: list[str | int]) -> list[int]:
        """Run the limiter script for `key`."""
        return list(await self.redis.run(_SCRIPT, [key], list(args)))

    def statistics(self) -> dict[str, int]:
        return dict(self.stats)

    async def aclose(self) -> None:
        await self.redis.aclose()


_SCRIPT = Script(LUA_SCRIPT)


@register("middleware", "rate-limit-redis")
class RateLimitRedis(MiddlewareKind[RateLimitRedisConfig]):
    state: RedisLimiterState

    @classmethod
    def new_state(cls, config: RateLimitRedisConfig, ctx: BuildContext) -> RedisLimiterState:
        return RedisLimiterState(config.redis_url, config.timeout, config.retry_interval)

    @classmethod
    async def close_state(cls, state: RedisLimiterState) -> None:
        await state.aclose()

    async def __call__(self, request: Request, next: Handler) -> Response:
        spec = self.config.spec()
        decision = await self._decide(self.config.key_prefix + client_key(request, self.config.key), spec)
        if decision is not None and not decision.allowed:
            self.state.stats["refused"] += 1
            raise too_many_requests(decision, spec)
        self.state.stats["allowed"] += 1
        response = await next(request)
        if decision is not None and self.config.headers_on_success:
            for name, value in limit_headers(decision, spec):
                response.headers.set(name, value)
        return response

    async def _decide(self, key: str, spec: LimiterSpec) -> Decision | None:
        """The script's decision, or None when Redis is unavailable and `fail_open` allows it."""
        now = self.ctx.clock.now()
        if self.state.health.usable(now):
            args: list[str | int] = [spec.algorithm, spec.rate, max(1, round(spec.period * 1000)), spec.burst]
            try:
                with anyio.fail_after(self.config.timeout * 2):
                    reply = await self.state.evaluate(key, args)
                return _decision(reply)
            except REDIS_ERRORS as exc:
                self._failed(now, exc)
        if self.config.fail_open:
            self.state.stats["failed_open"] += 1
            return None
        raise ServiceUnavailable("rate limiter unavailable")

    def _failed(self, now: float, exc: BaseException) -> None:
        state = self.state
        state.stats["redis_errors"] += 1
        if state.health.failed(now):
            action = "letting requests through" if self.config.fail_open else "refusing requests (503)"
            self.ctx.logger.warning(
                "rate-limit-redis %s: redis unavailable (%s); %s", self.ctx.name, exc, action
            )


def _decision(reply: list[Any]) -> Decision:
    allowed, limit, remaining, reset_ms, retry_ms = (int(v) for v in reply)
    return Decision(bool(allowed), limit, remaining, reset_ms / 1000, retry_ms / 1000)
