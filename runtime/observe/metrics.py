"""The gateway's Prometheus registry: the series of `metric_names.py`, kept across reloads.

`GatewayMetrics` is gateway state (`prepare_metrics` obtains it through the reload's
transaction, keyed by the histogram buckets): a reload that keeps the buckets keeps the object,
so every series keeps counting; one that changes them builds a new registry beside the running
one, swapped in at commit (the series start again from zero, which Prometheus' `rate()` reads
as a counter reset). A failed reload changes nothing.

Series fed by requests, connections and reloads are updated where it happens (`meters.py` caches
their label children): in one process as `LocalFamily`s (local_metrics.py: one Python call per
update, no lock, exposed through prometheus-client's collector interface), under `--workers` as
prometheus-client's own Counter, Gauge and Histogram (see below). Series that describe state (a server's
health, a scaler's replicas) are read from the live objects when scraped, by collectors
registered with `add_collector`: they cost nothing per request.

`run --workers N` (the supervisor sets PROMETHEUS_MULTIPROC_DIR to a directory of its own
before the workers start): prometheus-client's multiprocess mode. Every worker writes its
values to memory-mapped files there, and `registry` (what `/metrics` serves) sums the files of
all workers, so any worker's answer covers them all. State collectors report the answering
worker's objects. See docs/observability.md for why this and not aggregation by the supervisor.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ...compiler.schema import MetricsConfig
from ..state import StateTxn
from .local_metrics import LocalFamily
from .metric_names import CONFIG_LAST_RELOAD_SUCCESS, CONFIG_RELOADS, SERIES, Series
from .tally import Tally

# prometheus-client (with its exposition: http.server, wsgiref, email ..., some 3 MiB resident)
# is imported when a registry is built, so a gateway without a `metrics` block never loads it
# (tests/test_worker_imports.py).
if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.registry import Collector

__all__ = [
    "MULTIPROC_ENV",
    "GatewayMetrics",
    "multiprocess_dir",
    "prepare_metrics",
    "state_counters",
    "state_gauges",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The directory shared by the workers of `run --workers N`, or None in one process."""
    return os.environ.get(MULTIPROC_ENV) or None


class GatewayMetrics:
    """Every series, registered in a registry this gateway owns (never the global one)."""

    def __init__(self, buckets: Sequence[float]) -> None:
        from prometheus_client import CollectorRegistry

        self.buckets = tuple(buckets)
        self._own = CollectorRegistry(auto_describe=False)
        shared = multiprocess_dir()
        self._local_values = shared is None
        # Every kind of request's tally (meters.py), by the children it updates: shared by the
        # generations, so their pending values are folded before any read of the registry.
        self._tallies: dict[tuple[Any, ...], Tally] = {}
        self._metrics: dict[str, Any] = {
            s.name: self._create(s) if shared is not None else self._local(s) for s in SERIES
        }
        if shared is None:
            self._registry = self._own
        else:
            from prometheus_client.multiprocess import MultiProcessCollector

            self._registry = CollectorRegistry(auto_describe=False)
            MultiProcessCollector(self._registry, path=shared)  # type: ignore[no-untyped-call]

    @property
    def registry(self) -> CollectorRegistry:
        """What `/metrics` serves: the sum over every worker under `--workers`. Read the current
        values with `registry.collect()` or `registry.get_sample_value(name, labels)`."""
        return self._registry

    def metric(self, series: Series) -> Any:
        """The prometheus-client object of `series` (a Counter, Gauge or Histogram)."""
        return self._metrics[series.name]

    def add_collector(self, collector: Collector) -> None:
        """A collector of state series, called at each scrape."""
        self._registry.register(collector)

    def remove_collector(self, collector: Collector) -> None:
        self._registry.unregister(collector)

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The text a scrape gets, in the format `accept` asks for, and its content type."""
        from prometheus_client.exposition import choose_encoder

        encode, content_type = choose_encoder(accept or "")
        return encode(self._registry), content_type

    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """One sample's current value (None when the series has no such sample yet)."""
        return self._registry.get_sample_value(name, labels or {})

    def tally(self, key: tuple[Any, ...], make: Callable[[bool], Tally]) -> Tally:
        """The tally of a kind of request, by the label values of the children it updates
        (`make(local)` builds it the first time: meters.py, tally.py)."""
        found = self._tallies.get(key)
        if found is None:
            found = self._tallies[key] = make(self._local_values)
        return found

    def fold(self) -> None:
        """Add every tally's pending values to its children (before the registry is read)."""
        for tally in self._tallies.values():
            tally.fold()

    def reloaded(self, success: bool) -> None:
        self.metric(CONFIG_RELOADS).labels("success" if success else "failure").inc()

    def loaded(self) -> None:
        """A configuration was loaded (the start, or a reload): Traefik's last success time."""
        self.metric(CONFIG_LAST_RELOAD_SUCCESS).set(time.time())

    def _local(self, series: Series) -> LocalFamily | None:
        if series.source == "state":
            return None  # read at scrape time by a collector
        family = LocalFamily(series, self.buckets, self.fold)
        self._own.register(family)
        return family

    def _create(self, series: Series) -> Any:
        from prometheus_client import Counter, Gauge, Histogram

        if series.source == "state":
            return None  # read at scrape time by a collector
        # prometheus-client adds `_total` to a counter's name itself.
        name = series.name.removesuffix("_total") if series.kind == "counter" else series.name
        common: dict[str, Any] = {"labelnames": series.labels, "registry": self._own}
        if series.kind == "counter":
            return Counter(name, series.help, **common)
        if series.kind == "histogram":
            return Histogram(name, series.help, buckets=self.buckets, **common)
        return Gauge(name, series.help, multiprocess_mode=series.workers, **common)


def state_gauges(series: Series) -> Callable[[Iterable[tuple[Sequence[str], float]]], Any]:
    """A function turning `(label values, value)` pairs into the GaugeMetricFamily of `series`."""
    from prometheus_client.core import GaugeMetricFamily

    def family(samples: Iterable[tuple[Sequence[str], float]]) -> GaugeMetricFamily:
        out = GaugeMetricFamily(series.name, series.help, labels=series.labels)
        for labels, value in samples:
            out.add_metric(list(labels), value)
        return out

    return family


def state_counters(series: Series) -> Callable[[Iterable[tuple[Sequence[str], float]]], Any]:
    """The same for a counter read from live objects (their own running totals)."""
    from prometheus_client.core import CounterMetricFamily

    def family(samples: Iterable[tuple[Sequence[str], float]]) -> CounterMetricFamily:
        out = CounterMetricFamily(series.name.removesuffix("_total"), series.help, labels=series.labels)
        for labels, value in samples:
            out.add_metric(list(labels), value)
        return out

    return family


def prepare_metrics(
    config: MetricsConfig | None, txn: StateTxn, setup: Callable[[GatewayMetrics], None]
) -> GatewayMetrics | None:
    """The registry a configuration asks for, or None when it has no `metrics` block.

    Kept state of the generation being built, keyed by the buckets (see the module docstring);
    `setup` runs once on a new registry (the gateway registers its state collector there)."""
    if config is None:
        return None
    buckets = tuple(config.prometheus.buckets)

    def create() -> GatewayMetrics:
        metrics = GatewayMetrics(buckets)
        setup(metrics)
        return metrics

    metrics: GatewayMetrics = txn.obtain("metrics", repr(buckets), create)
    return metrics
