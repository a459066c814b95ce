"""Rate limiting for `rate-limit` and `rate-limit-redis`: the pure algorithms and the shared options.

The algorithms (token bucket, fixed window, sliding window, and a bounded table of them) take
`now` (seconds, from a `Clock`), so tests drive them on a manual clock and never sleep. They know
nothing about HTTP or Redis: `rate-limit` keeps a `LimiterTable` in
process memory, and `rate-limit-redis` runs a Lua transcription of the same three algorithms
inside Redis (see that module), so both kinds give the same answers for the same traffic.

Semantics, for `rate` requests per `period` seconds:

- token bucket: a bucket of `burst` tokens refilled continuously at `rate / period` per second;
  a request takes one token. Over any interval of length t at most `burst + rate * t / period`
  requests pass. This is the default, and the A3S meaning of `rate` (per second) and `burst`.
- fixed window: at most `rate` requests in each window `[k * period, (k + 1) * period)`. Cheap,
  but a client can pass `2 * rate` across a window boundary.
- sliding window: at most `rate` requests in any interval of length `period`. Exact (a log of
  admission times, at most `rate` entries per key), so it costs O(rate) memory per active key.

A `Decision` carries what the IETF RateLimit headers need: the limit, what remains, when the
quota is fully restored, and (when refused) when to retry.

The last section is what the two kinds share on top of the algorithms: their common options
(`LimitOptions`), how a request is attributed to a client (`client_key`), and the headers and
429 error built from a `Decision`. Both kinds call these, so their behaviour cannot drift apart.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import Field, field_validator, model_validator

from ...runtime.api import Request
from ...runtime.errors import TooManyRequests
from ..base import ConfigModel, Duration

__all__ = [
    "Algorithm",
    "Decision",
    "FixedWindow",
    "LimitOptions",
    "Limiter",
    "LimiterSpec",
    "LimiterTable",
    "SlidingWindow",
    "TokenBucket",
    "client_key",
    "limit_headers",
    "too_many_requests",
]

Algorithm = Literal["token-bucket", "fixed-window", "sliding-window"]

# Float refills accumulate rounding error; a bucket this close to a whole token counts as full.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one request."""

    allowed: bool
    limit: int
    remaining: int
    # Seconds until the quota is back to `limit` (the RateLimit-Reset header).
    reset_after: float
    # Seconds until a request would be admitted again; 0 when this one was (Retry-After).
    retry_after: float


class Limiter(Protocol):
    def hit(self, now: float) -> Decision:
        """Account for one request at `now` and say whether it may pass."""
        ...

    def idle_at(self) -> float:
        """The time from which this limiter is indistinguishable from a fresh one."""
        ...


class TokenBucket:
    """`burst` tokens, refilled at `rate_per_s`; a request takes one."""

    __slots__ = ("burst", "rate_per_s", "stamp", "tokens")

    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def hit(self, now: float) -> Decision:
        elapsed = max(0.0, now - self.stamp)
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate_per_s)
        self.stamp = max(self.stamp, now)
        allowed = self.tokens >= 1.0 - _EPSILON
        if allowed:
            self.tokens = max(0.0, self.tokens - 1.0)
        retry = 0.0 if allowed else (1.0 - self.tokens) / self.rate_per_s
        return Decision(
            allowed=allowed,
            limit=self.burst,
            remaining=math.floor(self.tokens + _EPSILON),
            reset_after=(self.burst - self.tokens) / self.rate_per_s,
            retry_after=retry,
        )

    def idle_at(self) -> float:
        return self.stamp + (self.burst - self.tokens) / self.rate_per_s


class FixedWindow:
    """At most `limit` requests per aligned window of `period` seconds."""

    __slots__ = ("count", "limit", "period", "window")

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self.window = -1
        self.count = 0

    def hit(self, now: float) -> Decision:
        window = int(now // self.period)
        if window > self.window:
            self.window, self.count = window, 0
        allowed = self.count < self.limit
        if allowed:
            self.count += 1
        reset = (self.window + 1) * self.period - now
        return Decision(allowed, self.limit, self.limit - self.count, reset, 0.0 if allowed else reset)

    def idle_at(self) -> float:
        return (self.window + 1) * self.period


class SlidingWindow:
    """At most `limit` requests in any interval of `period` seconds (a log of admission times)."""

    __slots__ = ("limit", "log", "period")

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self.log: deque[float] = deque()

    def hit(self, now: float) -> Decision:
        # An admission at time a still counts at `now` while now - a < period.
        while self.log and self.log[0] <= now - self.period:
            self.log.popleft()
        allowed = len(self.log) < self.limit
        if allowed:
            self.log.append(now)
        oldest = self.log[0] if self.log else now
        reset = self.log[-1] + self.period - now if self.log else 0.0
        retry = 0.0 if allowed else oldest + self.period - now
        return Decision(allowed, self.limit, self.limit - len(self.log), reset, retry)

    def idle_at(self) -> float:
        return self.log[-1] + self.period if self.log else -math.inf


@dataclass(frozen=True, slots=True)
class LimiterSpec:
    """How to build one key's limiter: `rate` requests per `period` seconds, `burst` for buckets."""

    algorithm: Algorithm
    rate: int
    period: float
    burst: int

    def new(self, now: float) -> Limiter:
        if self.algorithm == "fixed-window":
            return FixedWindow(self.rate, self.period)
        if self.algorithm == "sliding-window":
            return SlidingWindow(self.rate, self.period)
        return TokenBucket(self.rate / self.period, self.burst, now)

    @property
    def limit(self) -> int:
        """The quota advertised in RateLimit-Limit."""
        return self.burst if self.algorithm == "token-bucket" else self.rate


class LimiterTable:
    """One limiter per key, bounded: idle keys expire and the least recently used go first.

    A key whose limiter is back to its fresh state carries no information, so it is dropped the
    next time the table is touched. Beyond `max_keys` live keys the least recently seen key is
    evicted even if not idle (that client's quota restarts: the price of bounded memory).
    """

    def __init__(self, spec: LimiterSpec, max_keys: int) -> None:
        self.spec = spec
        self.max_keys = max_keys
        self._limiters: OrderedDict[str, Limiter] = OrderedDict()
        self.evicted = 0
        self.expired = 0

    def hit(self, key: str, now: float) -> Decision:
        self._expire(now, budget=2)
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = self._limiters[key] = self.spec.new(now)
            if len(self._limiters) > self.max_keys:
                self._limiters.popitem(last=False)
                self.evicted += 1
        else:
            self._limiters.move_to_end(key)
        return limiter.hit(now)

    def _expire(self, now: float, budget: int) -> None:
        # Amortised: look at a couple of the least recently used keys per request.
        for _ in range(budget):
            if not self._limiters:
                return
            key, oldest = next(iter(self._limiters.items()))
            if oldest.idle_at() > now:
                return
            del self._limiters[key]
            self.expired += 1

    def sweep(self, now: float) -> int:
        """Drop every idle key; returns how many were dropped."""
        idle = [key for key, limiter in self._limiters.items() if limiter.idle_at() <= now]
        for key in idle:
            del self._limiters[key]
        self.expired += len(idle)
        return len(idle)

    def __len__(self) -> int:
        return len(self._limiters)

    def statistics(self) -> dict[str, int]:
        return {"keys": len(self._limiters), "evicted": self.evicted, "expired": self.expired}


# --------------------------------------------------------------------------- shared by the two kinds


class LimitOptions(ConfigModel):
    """`rate` requests per `period` (A3S: `rate` is per second), `burst` for the token bucket."""

    rate: int = Field(ge=1, description="Requests per `period` (A3S: per second).")
    burst: int | None = Field(
        default=None, ge=1, description="Token bucket size: requests allowed at once (default: `rate`)."
    )
    period: Duration = Field(default=1.0, description="The time `rate` is counted over.")
    algorithm: Algorithm = "token-bucket"
    key: str = Field(
        default="ip",
        description='Who is limited: "ip" (client IP behind trusted proxies), "header:<Name>" or "jwt:<claim>".',
    )
    # Send RateLimit-* headers on responses that were let through as well as on 429s.
    headers_on_success: bool = True

    @field_validator("period")
    @classmethod
    def _positive_period(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("period must be longer than zero")
        return value

    @field_validator("key")
    @classmethod
    def _valid_key(cls, value: str) -> str:
        kind, _, name = value.partition(":")
        if value == "ip" or (kind in ("header", "jwt") and name.strip()):
            return value
        raise ValueError(f'invalid key {value!r}: use "ip", "header:<Header-Name>" or "jwt:<claim>"')

    @model_validator(mode="after")
    def _burst_for_bucket(self) -> Any:
        if self.burst is not None and self.algorithm != "token-bucket":
            raise ValueError(
                f"burst applies to the token bucket only; {self.algorithm} admits `rate` per `period`"
            )
        return self

    def spec(self) -> LimiterSpec:
        return LimiterSpec(self.algorithm, self.rate, self.period, self.burst or self.rate)


def client_key(request: Request, key: str) -> str:
    """The string a request is counted under. A missing header or claim falls back to the client IP."""
    kind, _, name = key.partition(":")
    if kind == "header":
        value = request.headers.get(name)
        if value:
            return f"h:{value}"
    elif kind == "jwt":
        claims = request.state.get("jwt_claims")
        if isinstance(claims, dict) and claims.get(name) is not None:
            return f"j:{claims[name]}"
    return f"ip:{request.client_ip}"


def limit_headers(decision: Decision, spec: LimiterSpec) -> list[tuple[str, str]]:
    """RateLimit-Limit / -Remaining / -Reset / -Policy (draft-ietf-httpapi-ratelimit-headers)."""
    policy = f"{spec.limit};w={_seconds(spec.period)}"
    if spec.algorithm == "token-bucket":
        policy += f";burst={spec.burst}"
    return [
        ("RateLimit-Limit", str(decision.limit)),
        ("RateLimit-Remaining", str(max(0, decision.remaining))),
        ("RateLimit-Reset", str(_seconds(decision.reset_after))),
        ("RateLimit-Policy", policy),
    ]


def too_many_requests(decision: Decision, spec: LimiterSpec) -> TooManyRequests:
    """The 429, with Retry-After (RFC 9110 §10.2.3, whole seconds, at least 1) and the headers."""
    headers = [("Retry-After", str(max(1, _seconds(decision.retry_after)))), *limit_headers(decision, spec)]
    return TooManyRequests("rate limit exceeded", headers=headers)


def _seconds(value: float) -> int:
    # Headers carry whole seconds; round up so a client that waits that long is admitted.
    return max(0, math.ceil(value - 1e-9))
