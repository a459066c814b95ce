"""Time-bucketed aggregation for the autoscaler, with time as a parameter.

Three small pure objects, none of which reads a clock:

* `WindowAverage`: Knative's `TimedFloat64Buckets.WindowAverage`. Values are recorded into
  buckets of `granularity` seconds (Knative's BucketSize is 1 s); the average over a window is
  the mean bucket value over the buckets that hold data: buckets before the first write (a window
  that is only partly filled) and after the last write (a reporter that went quiet) are left out,
  while a gap between two writes counts as zero. Knative sums the reports of many pods into a
  bucket; the gateway is a single reporter, so several samples in one bucket are averaged.
* `MaxWindow`: the largest value recorded in the last `duration` seconds (Knative's
  `max.TimeWindow`, used for `scale_down_delay`).
* `ConcurrencyMeter`: the time-weighted average of a step function (requests in flight plus
  requests queued) between two reads, as Knative's queue-proxy and activator report it. A request
  that starts and ends between two samples still shows up in the next one.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["ConcurrencyMeter", "MaxWindow", "WindowAverage"]


class WindowAverage:
    """Average of bucketed samples over a sliding window of `window` seconds."""

    __slots__ = ("_buckets", "_first", "_last", "granularity", "nbuckets", "window")

    def __init__(self, window: float, granularity: float = 1.0) -> None:
        if window <= 0 or granularity <= 0:
            raise ValueError("window and granularity must be positive")
        self.window = window
        self.granularity = granularity
        self.nbuckets = max(1, math.ceil(window / granularity - 1e-9))
        # bucket index -> [sum, count]
        self._buckets: dict[int, list[float]] = {}
        self._first: int | None = None
        self._last: int | None = None

    def _index(self, now: float) -> int:
        return math.floor(now / self.granularity + 1e-9)

    def record(self, now: float, value: float) -> None:
        idx = self._index(now)
        if self._last is not None and idx < self._last - self.nbuckets + 1:
            return  # older than the window: ignored, as Knative does
        if self._last is None or idx - self._last >= self.nbuckets:
            self._buckets.clear()
            self._first = idx
        if self._last is None or idx > self._last:
            self._last = idx
        if self._first is None or idx < self._first:
            self._first = idx
        horizon = self._last - self.nbuckets
        for old in [i for i in self._buckets if i <= horizon]:
            del self._buckets[old]
        bucket = self._buckets.setdefault(idx, [0.0, 0.0])
        bucket[0] += value
        bucket[1] += 1.0

    def average(self, now: float) -> float:
        if self._last is None or self._first is None:
            return 0.0
        idx = self._index(now)
        gap = idx - self._last
        if gap >= self.nbuckets:
            return 0.0
        if gap > 0:
            valid = min(self._last - self._first + 1, self.nbuckets - gap)
        else:
            valid = min(self._last - self._first + 1, self.nbuckets)
        highest = max(idx, self._last)
        lowest = highest - self.nbuckets
        total = sum(s / c for i, (s, c) in self._buckets.items() if lowest < i <= highest)
        return total / max(1, valid)

    def is_empty(self, now: float) -> bool:
        return self._last is None or self._index(now) - self._last >= self.nbuckets


class MaxWindow:
    """The maximum value recorded during the last `duration` seconds."""

    __slots__ = ("_entries", "duration")

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self._entries: deque[tuple[float, int]] = deque()

    def record(self, now: float, value: int) -> None:
        # A monotonic deque: an entry smaller than a newer one can never be the maximum again.
        while self._entries and self._entries[-1][1] <= value:
            self._entries.pop()
        self._entries.append((now, value))

    def current(self, now: float) -> int:
        while self._entries and self._entries[0][0] <= now - self.duration and len(self._entries) > 1:
            self._entries.popleft()
        return self._entries[0][1] if self._entries else 0


class ConcurrencyMeter:
    """Time-weighted average of a value that changes in steps, read (and reset) by `take`."""

    __slots__ = ("_area", "_since", "_start", "last_active", "value")

    def __init__(self, now: float) -> None:
        self.value = 0.0
        self._since = now
        self._start = now
        self._area = 0.0
        # When the value was last seen above zero (None: never).
        self.last_active: float | None = None

    def set(self, now: float, value: float) -> None:
        now = max(now, self._since)
        self._area += self.value * (now - self._since)
        self._since = now
        if value > 0 or self.value > 0:
            self.last_active = now
        self.value = value

    def take(self, now: float) -> float:
        """The average since the previous `take` (the current value when no time passed)."""
        now = max(now, self._since)
        area = self._area + self.value * (now - self._since)
        span = now - self._start
        average = area / span if span > 0 else self.value
        if self.value > 0:
            self.last_active = now
        self._area, self._since, self._start = 0.0, now, now
        return average
