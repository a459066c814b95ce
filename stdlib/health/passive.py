"""`passive_health`: evict a backend that keeps failing real requests, for a cool-down.

```hcl
load_balancer {
  servers = [{ url = "http://gpu-1:8000" }, { url = "http://gpu-2:8000" }]
  passive_health {
    max_failures     = 5          # consecutive failures ...
    window           = "10s"      # ... all within this long
    cooldown         = "30s"      # evicted for this long
    failure_statuses = "500-599"  # codes or ranges, comma-separated: "502,503,504"
  }
}
```

Active probes see a backend every `interval`; real traffic sees it on every request. Passive
health reads the outcome of each proxied request: a connect error, a timeout, or a response
status in `failure_statuses` is a failure; anything else is a success. When `max_failures`
consecutive failures happened within `window`, the backend is evicted from rotation for
`cooldown`. It comes back when the cool-down has elapsed or, earlier, when an active probe of it
succeeds (when `health_check` is configured too).

Theory of operation. Per backend, two states and a run of failure times:

| state    | input                       | next state                                          |
|----------|-----------------------------|-----------------------------------------------------|
| serving  | success                     | serving, run cleared                                |
| serving  | failure at t                | run += t (only the last `max_failures` kept); evicted until t + cooldown if the run is full and spans <= window (run cleared) |
| serving  | good probe                  | serving (a probe does not vouch for real traffic)   |
| serving  | time passes                 | serving                                             |
| evicted  | success / failure           | evicted (late answers of requests sent before the eviction are ignored) |
| evicted  | good probe                  | serving                                             |
| evicted  | time reaches until          | serving                                             |

Everything takes `now`; expiry is evaluated lazily by `available(key, now)`, so no timer task
is needed and tests run on a manual clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ...compiler.schema import PassiveHealthConfig
from ..registry import register

__all__ = ["PassiveHealth", "parse_statuses"]


def parse_statuses(text: str) -> tuple[tuple[int, int], ...]:
    """`"500-599"` or `"502,503,504"` or `"429, 500-599"` as inclusive ranges."""
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        if not low.strip().isdigit() or (high and not high.strip().isdigit()):
            raise ValueError(f'failure_statuses must be codes or ranges like "500-599", got {text!r}')
        lo, hi = int(low), int(high or low)
        if not 100 <= lo <= hi <= 599:
            raise ValueError(f"failure_statuses range {part.strip()!r} is not within 100-599")
        ranges.append((lo, hi))
    return tuple(ranges)


@dataclass(slots=True)
class _BackendRecord:
    failures: deque[float] = field(default_factory=deque)
    evicted_until: float | None = None


@register("health", "passive", config=PassiveHealthConfig)
class PassiveHealth:
    """The passive-health table of one service, keyed by backend key."""

    def __init__(self, config: PassiveHealthConfig) -> None:
        self.config = config
        self.failure_statuses = parse_statuses(config.failure_statuses)
        self._records: dict[str, _BackendRecord] = {}
        self.evictions = 0

    def is_failure_status(self, status: int) -> bool:
        return any(lo <= status <= hi for lo, hi in self.failure_statuses)

    def available(self, key: str, now: float) -> bool:
        """False while the backend is evicted (the cool-down expires lazily here)."""
        record = self._records.get(key)
        if record is None or record.evicted_until is None:
            return True
        if now >= record.evicted_until:
            record.evicted_until = None
            return True
        return False

    def evicted_until(self, key: str) -> float | None:
        record = self._records.get(key)
        return None if record is None else record.evicted_until

    def record_status(self, key: str, status: int, now: float) -> bool:
        """A response with `status` arrived; True when this evicted the backend."""
        if self.is_failure_status(status):
            return self.record_failure(key, now)
        self.record_success(key, now)
        return False

    def record_success(self, key: str, now: float) -> None:
        record = self._records.get(key)
        if record is not None and self.available(key, now):
            record.failures.clear()

    def record_failure(self, key: str, now: float) -> bool:
        """A connect error, a timeout or a failure status; True when this evicted the backend."""
        if not self.available(key, now):
            return False
        record = self._records.setdefault(key, _BackendRecord())
        record.failures.append(now)
        while len(record.failures) > self.config.max_failures:
            record.failures.popleft()
        full = len(record.failures) == self.config.max_failures
        if not full or now - record.failures[0] > self.config.window:
            return False
        record.failures.clear()
        record.evicted_until = now + self.config.cooldown
        self.evictions += 1
        return True

    def probe_succeeded(self, key: str, now: float) -> None:
        """A good active probe re-admits an evicted backend at once."""
        record = self._records.get(key)
        if record is not None:
            record.evicted_until = None

    def forget(self, key: str) -> None:
        """Drop the record of a backend removed from the service."""
        self._records.pop(key, None)

    def statistics(self, now: float) -> dict[str, int]:
        return {
            "evicted": sum(not self.available(k, now) for k in list(self._records)),
            "evictions": self.evictions,
        }
