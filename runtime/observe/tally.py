"""A kind of request's series, updated in batches: what a proxied request costs the metrics.

A request is counted in up to three requests counters and duration histograms (its entrypoint,
router and service), and observed in two time-to-first-byte histograms (router, service). All
of their label values are known when its response head is ready, and requests of one kind
(same entrypoint, router, service, status, method and protocol) update the same children. A
`Tally` is those children for one kind of request, made once (`RequestMeters` finds it with
one dict lookup per request), and it does not update them per request: the request path
appends each duration to a list (one C call), and `fold` turns the lists into the children's
counts and sums, a batch at a time, with the bucketing done in C (a sort, then one
`bisect` per bucket).

A batch is folded when it holds `BATCH` durations, and every pending value is folded before
the registry is read (`LocalFamily.collect` calls `GatewayMetrics.fold`): a scrape, the admin
API and `registry.get_sample_value` see every request that was over, as before. Folding
happens on the event loop's thread, as the appends do (the admin API and the live feed read
the registry there), so no lock is needed.

Under `--workers` the children are prometheus-client's multiprocess values, which another
process reads from their files at any time: nothing may wait there, so the "lists" are
`Immediate`s, whose `append` updates the children at once.

Whatever the order of the additions, the counts are the same; a histogram's sum is added a
batch at a time (`sum(batch)`), which can differ from one-by-one addition in the last bit.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

from .local_metrics import LocalHistogram

__all__ = ["BATCH", "Immediate", "Tally", "Target", "Targets"]

BATCH = 64

# A requests counter (None for a time-to-first-byte histogram) and its histogram.
Target = tuple[Any, Any]
# The targets of one list, made when its first value is recorded: a requests child appears
# in the exposition once a request was counted in it, not before (a 429 that never reached
# the service is no service series, not even a zero).
Targets = Callable[[], Sequence[Target]]


class Immediate:
    """A "list" whose `append` records the value at once (prometheus-client's children)."""

    __slots__ = ("_make", "_targets")

    def __init__(self, targets: Targets) -> None:
        self._make: Targets | None = targets
        self._targets: Sequence[Target] = ()

    def append(self, seconds: float) -> None:
        if self._make is not None:
            self._targets, self._make = self._make(), None
        for counter, histogram in self._targets:
            if counter is not None:
                counter.inc()
            histogram.observe(seconds)

    def __len__(self) -> int:
        return 0  # nothing is ever pending


class _Pending:
    """A list's values waiting for `fold`, and where they go."""

    __slots__ = ("make", "targets", "values")

    def __init__(self, values: list[float], make: Targets) -> None:
        self.values, self.make = values, make
        self.targets: Sequence[Target] | None = None

    def fold(self) -> None:
        values = self.values
        if values:
            if self.targets is None:
                self.targets = self.make()
            n = len(values)
            for counter, histogram in self.targets:
                if counter is not None:
                    counter.value += n
                _observe_all(histogram, values)
            values.clear()


class Tally:
    """The children one kind of request updates (see the module docstring). `elapsed` takes
    the time from the request's start to its body's end (entrypoint and router series),
    `served` from when it reached the service (service series), `route_ttfb` and
    `service_ttfb` the times to first byte (None when no such child is kept)."""

    __slots__ = ("_pending", "elapsed", "retries", "route_ttfb", "served", "service", "service_ttfb")

    def __init__(
        self,
        elapsed: Targets,
        served: Targets,
        route_ttfb: Any,
        service: Any,
        local: bool,
    ) -> None:
        self._pending: list[_Pending] = []

        def values(targets: Targets) -> Any:
            if not local:
                return Immediate(targets)
            pending = _Pending([], targets)
            self._pending.append(pending)
            return pending.values

        self.elapsed: list[float] = values(elapsed)
        self.served: list[float] = values(served)
        self.route_ttfb: list[float] | None = None
        if route_ttfb is not None:
            self.route_ttfb = values(lambda: [(None, route_ttfb)])
        # The service's own meters: its time to first byte (batched), its retries and mirror
        # copies (rare, counted at once).
        self.service = service
        self.service_ttfb: list[float] | None = None
        self.retries = None
        if service is not None:
            self.service_ttfb = values(lambda: [(None, service.ttfb)])
            self.retries = service.retries

    def ended(self, start: float, reached: float | None, now: float) -> None:
        """A request of this kind is over (its body ended at `now`)."""
        elapsed = self.elapsed
        elapsed.append(now - start)
        if reached is not None:
            self.served.append(now - reached)
        if len(elapsed) >= BATCH:  # `elapsed` takes one value per request: the longest list
            self.fold()

    def fold(self) -> None:
        """Add the pending values to the children, and forget them."""
        for pending in self._pending:
            pending.fold()


def _observe_all(histogram: LocalHistogram, values: list[float]) -> None:
    # A value belongs to the first bucket whose bound is >= it (le = "<=", as in
    # `LocalHistogram.observe`), so after a sort (in C) the values up to a bound are
    # `bisect_right(values, bound)`: one C call per bucket, not one Python step per value, and
    # no more once every value is placed.
    values.sort()
    counts, n, placed = histogram.counts, len(values), 0
    for bucket, bound in enumerate(histogram.bounds):
        upto = bisect_right(values, bound)
        if upto != placed:
            counts[bucket] += upto - placed
            placed = upto
            if placed == n:
                break
    else:
        counts[-1] += n - placed  # above every bound: +Inf
    histogram.sum += sum(values)
