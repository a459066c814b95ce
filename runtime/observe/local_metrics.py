"""Metric families for one process: plain numbers updated in one Python call, exposed through
prometheus-client's collector interface.

prometheus-client's own `Counter.inc` and `Histogram.observe` take a lock and check the metric's
state on every call (some five and twelve Python calls); a proxied request records eight values
(three counts, five latencies), which made those calls the largest part of the metrics' cost
(benchmarks/callcount.py, docs/benchmarks.md). The gateway updates its metrics only from its
event loop thread, so no lock is needed: a counter child's `inc` is one addition, a histogram
child's `observe` a `bisect` and two additions, and the families turn them into
prometheus-client's `CounterMetricFamily` / `HistogramMetricFamily` when scraped, so the
exposition (and `registry.get_sample_value`) is prometheus-client's.

Under `run --workers N` the gateway uses prometheus-client's own classes instead (their
multiprocess mode sums the workers: runtime/observe/metrics.py). A family offers the part of
their interface the gateway uses: `labels(*values)` and, for a family without labels, the
child's methods.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .metric_names import Series

# prometheus-client is imported when a family is scraped: tally.py's histogram children are
# these, and a gateway without metrics imports tally.py but never needs prometheus-client.
if TYPE_CHECKING:
    from prometheus_client.core import HistogramMetricFamily

__all__ = ["LocalFamily"]


class LocalCounter:
    __slots__ = ("value",)

    def __init__(self, _bounds: Sequence[float]) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class LocalGauge(LocalCounter):
    __slots__ = ()

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = float(value)


class LocalHistogram:
    """Counts per bucket (not cumulative: the exposition sums them), the last one `+Inf`."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le = "<=").
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


_CHILDREN: dict[str, type[LocalCounter | LocalGauge | LocalHistogram]] = {
    "counter": LocalCounter,
    "gauge": LocalGauge,
    "histogram": LocalHistogram,
}


class LocalFamily:
    """One series' children by label values, and a prometheus-client collector of them."""

    def __init__(
        self, series: Series, buckets: Sequence[float], before_collect: Callable[[], None] | None = None
    ) -> None:
        self.series = series
        # The request series' pending values are added first (GatewayMetrics.fold: tally.py).
        self._before_collect = before_collect
        self._bounds = list(buckets)
        self._make = _CHILDREN[series.kind]
        self._children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.series.labels):
                raise ValueError(f"{self.series.name} takes labels {self.series.labels}, not {values}")
            child = self._children[values] = self._make(self._bounds)
        return child

    # A family without labels is its own single child, as prometheus-client's are.
    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def set(self, value: float) -> None:
        self.labels().set(value)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        if self._before_collect is not None:
            self._before_collect()
        series, labels = self.series, list(self.series.labels)
        if series.kind == "counter":
            counter = CounterMetricFamily(series.name, series.help, labels=labels)
            for values, child in self._children.items():
                counter.add_metric(list(values), child.value)
            yield counter
        elif series.kind == "gauge":
            gauge = GaugeMetricFamily(series.name, series.help, labels=labels)
            for values, child in self._children.items():
                gauge.add_metric(list(values), child.value)
            yield gauge
        else:
            yield self._histogram(labels)

    def _histogram(self, labels: list[str]) -> HistogramMetricFamily:
        from prometheus_client.core import HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        series = self.series
        family = HistogramMetricFamily(series.name, series.help, labels=labels)
        les = [floatToGoString(b) for b in self._bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        for values, child in self._children.items():
            total, buckets = 0, []
            for le, count in zip(les, child.counts, strict=True):
                total += count
                buckets.append((le, total))
            family.add_metric(list(values), buckets, child.sum)
        return family
