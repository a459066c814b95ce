"""Parking: an upstream that answered 429 with `Retry-After` takes no request until then.

`retry_after(value, wall_now)` reads the field (RFC 9110 §10.2.3): delay-seconds, or an
HTTP-date, which is compared with the wall clock. A value that is neither is ignored, as is a
time already past. `ParkingLot` keeps, per target, the monotonic instant it may be tried again;
the router skips parked targets, and when every target of a request is parked the client gets
429 with the `Retry-After` of the earliest to come back. Pure: time is a parameter.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Hashable, Iterable

__all__ = ["ParkingLot", "retry_after"]


def retry_after(value: str | None, wall_now: float) -> float | None:
    """Seconds to wait according to a `Retry-After` value, or None (absent, invalid or past)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(int(value))
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 §5.6.7: HTTP-dates are GMT
            return None
        seconds = when.timestamp() - wall_now
    return seconds if seconds > 0 else None


class ParkingLot:
    """Which targets are parked, until when (monotonic seconds). Live state: kept across a
    reload that leaves its service unchanged."""

    __slots__ = ("_until",)

    def __init__(self) -> None:
        self._until: dict[Hashable, float] = {}

    def park(self, target: Hashable, seconds: float, now: float) -> None:
        """Park `target` for `seconds` from `now` (a later existing park is kept)."""
        until = now + seconds
        if until > self._until.get(target, -math.inf):
            self._until[target] = until

    def parked(self, target: Hashable, now: float) -> bool:
        until = self._until.get(target)
        if until is None:
            return False
        if until <= now:
            del self._until[target]
            return False
        return True

    def earliest(self, targets: Iterable[Hashable], now: float) -> float:
        """Seconds until the first of `targets` comes back (0 when one is not parked)."""
        return max(0.0, min((self._until.get(t, now) for t in targets), default=now) - now)

    def statistics(self, now: float) -> dict[str, int]:
        return {"parked": sum(until > now for until in self._until.values())}
