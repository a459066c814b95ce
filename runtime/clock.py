"""Time as a parameter.

Buckets, windows, breakers and the autoscaler take `now` (monotonic seconds) as an argument or
read it from a `Clock`, so their tests run on a `ManualClock` and never sleep.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def wall(self) -> float:
        """Unix time in seconds (for cookies, logs, JWT exp)."""
        ...


class SystemClock:
    __slots__ = ()

    # The C functions themselves, not methods that call them: `clock.now()` is read a few times
    # per proxied request, and a Python frame around time.monotonic() was most of its cost.
    now = staticmethod(time.monotonic)
    wall = staticmethod(time.time)


class ManualClock:
    """A clock that moves only when told to: `advance(seconds)`."""

    def __init__(self, start: float = 1000.0, wall_start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds


SYSTEM_CLOCK = SystemClock()
