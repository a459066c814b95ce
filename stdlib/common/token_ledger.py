"""Request, token and budget limits with reserve-then-settle accounting, in memory or in Redis.

An LLM request's cost is known only once the upstream has answered, but the decision to admit
it must be made before. So admission *reserves* an estimate (the prompt's size plus the output
the client allows, `max_tokens`) in every meter the request touches, and when the response ends
the request *settles*: the difference between the real usage and the estimate is added (usually
a refund). Concurrent requests see each other's reservations, so N gateways admitting at once
cannot all spend the same remaining quota: the total admitted stays within the limit, up to one
request's worth (a request larger than the whole limit still passes when its window is empty,
or it could never pass).

Two meter kinds:

- `window`: at most `limit` units in any interval of `window` seconds (a sliding log: each
  request's entry carries its time and amount; entries older than the window drop out). Used for
  RPM (amount 1) and TPM (amount = tokens).
- `budget`: at most `limit` units in total (tokens or money), or per aligned `window` when one is
  set (a monthly budget). It never drops entries: spent is spent.

A refusal says which meter refused and when a retry could pass: for a window, when enough old
entries have expired; for a period budget, the next period; for a lifetime budget never (None).

`LocalLedger` keeps the meters in process memory (one gateway process); `RedisLedger` runs the
same algorithm as two Lua scripts in Redis, atomically, with Redis's clock, so every gateway
process and worker shares one set of meters. Both take `now` only where they own the clock.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from .redis_scripts import RedisScripts, Script

__all__ = ["Admission", "Ledger", "LocalLedger", "Meter", "RedisLedger"]

MeterKind = Literal["window", "budget"]


@dataclass(frozen=True, slots=True)
class Meter:
    """One limit a request counts against: `key` names its counter (e.g. `key:alice:tpm`)."""

    key: str
    kind: MeterKind
    limit: float
    window: float  # seconds; 0 for a lifetime budget
    amount: float  # what this request reserves (1 request, estimated tokens, estimated cost)
    unit: Literal["requests", "tokens", "usd"] = "tokens"  # requests are not settled: one is one


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer to a reservation: admitted, or refused by `meters[refused]`."""

    admitted: bool
    refused: int = -1  # index of the refusing meter
    retry_after: float | None = None  # seconds; None when waiting cannot help (a spent budget)
    stamp: float = 0.0  # the ledger's time of the reservation (settling finds its entries by it)


class Ledger(Protocol):
    async def reserve(self, request_id: str, meters: list[Meter]) -> Admission: ...

    async def settle(self, request_id: str, meters: list[Meter], stamp: float, deltas: list[float]) -> None:
        """Add `deltas[i]` (real minus estimated) to the request's entry in `meters[i]`."""

    async def spent(self, key: str, window: float) -> float:
        """What a budget meter holds now."""


def _period_key(key: str, window: float, stamp: float) -> str:
    return f"{key}:{math.floor(stamp / window)}" if window > 0 else key


# ---------------------------------------------------------------------------------- in memory


@dataclass(eq=False, slots=True)
class _Window:
    entries: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)  # id -> (t, amt)
    total: float = 0.0

    def evict(self, now: float, window: float) -> None:
        while self.entries:
            rid, (stamp, amount) = next(iter(self.entries.items()))
            if stamp > now - window:
                break
            del self.entries[rid]
            self.total -= amount

    def retry_after(self, now: float, meter: Meter) -> float:
        """Seconds until enough entries expire for `meter.amount` to fit."""
        freed = 0.0
        for stamp, amount in self.entries.values():
            freed += amount
            if self.total - freed + meter.amount <= meter.limit:
                return max(0.0, stamp + meter.window - now)
        return meter.window


class LocalLedger:
    """The meters of one process, in memory. Time comes from the caller (`clock()`).

    Memory stays bounded by the meters in use: a budget keeps only its current period, and every
    `SWEEP_EVERY` reservations the windows drop what has expired (and vanish when empty).
    """

    SWEEP_EVERY = 4096

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.windows: dict[str, _Window] = {}
        self.budgets: dict[str, tuple[int, float]] = {}  # key -> (period index, used)
        self._until_sweep = self.SWEEP_EVERY

    async def reserve(self, request_id: str, meters: list[Meter]) -> Admission:
        return self.reserve_at(self.clock.now(), request_id, meters)

    def reserve_at(self, now: float, request_id: str, meters: list[Meter]) -> Admission:
        self._until_sweep -= 1
        if self._until_sweep <= 0:
            self._sweep(now, max((m.window for m in meters if m.kind == "window"), default=60.0))
        for index, meter in enumerate(meters):
            refusal = self._check(now, meter)
            if refusal is not None:
                return Admission(False, index, None if refusal < 0 else refusal, now)
        for meter in meters:
            if meter.kind == "window":
                win = self.windows.setdefault(meter.key, _Window())
                win.entries[request_id] = (now, meter.amount)
                win.total += meter.amount
            else:
                self._add(meter, now, meter.amount)
        return Admission(True, stamp=now)

    def _check(self, now: float, meter: Meter) -> float | None:
        """None when `meter` admits; else seconds to wait (-1: waiting does not help)."""
        if meter.kind == "window":
            win = self.windows.get(meter.key)
            if win is None:
                return None
            win.evict(now, meter.window)
            if not win.entries:
                del self.windows[meter.key]
                return None
            if win.total + meter.amount <= meter.limit:
                return None
            return win.retry_after(now, meter)
        used = self._used(meter.key, meter.window, now)
        if used <= 0 or (used < meter.limit and used + meter.amount <= meter.limit):
            return None
        if meter.window <= 0:
            return -1.0
        return (math.floor(now / meter.window) + 1) * meter.window - now

    def _used(self, key: str, window: float, stamp: float) -> float:
        entry = self.budgets.get(key)
        return entry[1] if entry is not None and entry[0] == _period(window, stamp) else 0.0

    def _add(self, meter: Meter, stamp: float, amount: float) -> None:
        self.budgets[meter.key] = (
            _period(meter.window, stamp),
            self._used(meter.key, meter.window, stamp) + amount,
        )

    def _sweep(self, now: float, window: float) -> None:
        self._until_sweep = self.SWEEP_EVERY
        for key, win in list(self.windows.items()):
            win.evict(now, window)
            if not win.entries:
                del self.windows[key]

    async def settle(self, request_id: str, meters: list[Meter], stamp: float, deltas: list[float]) -> None:
        for meter, delta in zip(meters, deltas, strict=True):
            if delta == 0:
                continue
            if meter.kind == "window":
                win = self.windows.get(meter.key)
                entry = win.entries.get(request_id) if win is not None else None
                if win is not None and entry is not None:  # not expired meanwhile
                    win.entries[request_id] = (entry[0], entry[1] + delta)
                    win.total += delta
            elif self.budgets.get(meter.key, (None, 0.0))[0] == _period(meter.window, stamp):
                self._add(meter, stamp, delta)  # (a period that has ended is not changed)

    async def spent(self, key: str, window: float) -> float:
        return self._used(key, window, self.clock.now())


def _period(window: float, stamp: float) -> int:
    return math.floor(stamp / window) if window > 0 else 0


# ---------------------------------------------------------------------------------- in Redis

# A window meter is three Redis keys: K (a sorted set of request ids scored by time in ms),
# K:a (a hash id -> amount) and K:t (the running total). A budget meter is one counter, K or
# K:<period index>. ARGV: request id, then per meter: kind ('w' | 'b'), limit, window ms, amount.
# Returns {refused meter index (0: admitted), retry ms (-1: never), now ms}.
_RESERVE = Script("""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]
local function budget_key(key, window)
  if window > 0 then return key .. ':' .. math.floor(now / window) end
  return key
end
for i = 1, #KEYS do
  local key, a = KEYS[i], 2 + (i - 1) * 4
  local kind, limit, window, amount = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  if kind == 'w' then
    local old = redis.call('ZRANGEBYSCORE', key, '-inf', now - window)
    local used
    if #old > 0 then
      local amounts = redis.call('HMGET', key .. ':a', unpack(old))
      local gone = 0
      for j = 1, #amounts do gone = gone + (tonumber(amounts[j]) or 0) end
      redis.call('HDEL', key .. ':a', unpack(old))
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
      used = tonumber(redis.call('INCRBYFLOAT', key .. ':t', -gone))
    else
      used = tonumber(redis.call('GET', key .. ':t') or '0')
    end
    if redis.call('ZCARD', key) > 0 and used + amount > limit then
      local live = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
      local freed, retry = 0, window
      for j = 1, #live, 2 do
        freed = freed + (tonumber(redis.call('HGET', key .. ':a', live[j])) or 0)
        if used - freed + amount <= limit then
          retry = math.max(0, tonumber(live[j + 1]) + window - now)
          break
        end
      end
      return {i, math.ceil(retry), now}
    end
  else
    local used = tonumber(redis.call('GET', budget_key(key, window)) or '0')
    if used > 0 and (used >= limit or used + amount > limit) then
      if window > 0 then return {i, (math.floor(now / window) + 1) * window - now, now} end
      return {i, -1, now}
    end
  end
end
for i = 1, #KEYS do
  local key, a = KEYS[i], 2 + (i - 1) * 4
  local kind, window, amount = ARGV[a], tonumber(ARGV[a + 2]), ARGV[a + 3]
  if kind == 'w' then
    redis.call('ZADD', key, now, id)
    redis.call('HSET', key .. ':a', id, amount)
    redis.call('INCRBYFLOAT', key .. ':t', amount)
    for _, k in ipairs({key, key .. ':a', key .. ':t'}) do redis.call('PEXPIRE', k, window + 60000) end
  else
    local bkey = budget_key(key, window)
    redis.call('INCRBYFLOAT', bkey, amount)
    if window > 0 then redis.call('PEXPIRE', bkey, window * 2) end
  end
end
return {0, 0, now}
""")

# ARGV: request id, reservation time ms, then per meter: kind, window ms, delta.
_SETTLE = Script("""
local id, stamp = ARGV[1], tonumber(ARGV[2])
for i = 1, #KEYS do
  local key, a = KEYS[i], 3 + (i - 1) * 3
  local kind, window, delta = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
  if kind == 'w' then
    if redis.call('HEXISTS', key .. ':a', id) == 1 then
      redis.call('HINCRBYFLOAT', key .. ':a', id, delta)
      redis.call('INCRBYFLOAT', key .. ':t', delta)
    end
  else
    local bkey = key
    if window > 0 then bkey = key .. ':' .. math.floor(stamp / window) end
    redis.call('INCRBYFLOAT', bkey, delta)
  end
end
return 0
""")


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000)) if seconds > 0 else 0


class RedisLedger:
    """The same meters in Redis (keys under `prefix`), shared by every gateway process."""

    def __init__(self, redis: RedisScripts, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    async def reserve(self, request_id: str, meters: list[Meter]) -> Admission:
        args: list[str | int | float] = [request_id]
        for m in meters:
            args += ["w" if m.kind == "window" else "b", repr(float(m.limit)), _ms(m.window), repr(m.amount)]
        reply = await self.redis.run(_RESERVE, [self.prefix + m.key for m in meters], args)
        refused, retry_ms, now_ms = (int(v) for v in reply)
        if refused == 0:
            return Admission(True, stamp=now_ms / 1000)
        return Admission(False, refused - 1, None if retry_ms < 0 else retry_ms / 1000, now_ms / 1000)

    async def settle(self, request_id: str, meters: list[Meter], stamp: float, deltas: list[float]) -> None:
        pairs = [(m, d) for m, d in zip(meters, deltas, strict=True) if d != 0]
        if not pairs:
            return
        args: list[str | int | float] = [request_id, round(stamp * 1000)]
        for m, delta in pairs:
            args += ["w" if m.kind == "window" else "b", _ms(m.window), repr(float(delta))]
        await self.redis.run(_SETTLE, [self.prefix + m.key for m, _ in pairs], args)

    async def spent(self, key: str, window: float) -> float:
        if window > 0:
            now_ms = int((await self.redis.command("TIME"))[0]) * 1000
            key = _period_key(key, window * 1000, now_ms)
        value = await self.redis.command("GET", self.prefix + key)
        return float(value) if value is not None else 0.0
