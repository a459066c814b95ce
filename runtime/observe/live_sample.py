"""The live feed's `sample` event: rates and latencies over the last second, from counters.

Nothing here counts requests: the request path already does, in the gateway's metrics (the
Prometheus series `a3s_gateway_<level>_requests_total` and `_request_duration_seconds`). Once per
interval the sampler reads the totals, and a sample is the difference with the previous reading:

- `rate`: requests per second, `errors`: 5xx answers per second, over the interval;
- `p50_ms` and `p99_ms`: estimated from the histogram's bucket deltas over the interval, the
  way Prometheus' `histogram_quantile` does (linear within the bucket that holds the rank);
  null when the interval saw no request;
- `requests` and `errors_total`: the totals since the gateway started.

`Sampler` is a plain function of `now` and the readings, so the arithmetic is tested without a
gateway; `read_registry` reads the series of a prometheus-client registry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LEVELS", "Reading", "Sampler", "Totals", "quantile", "read_registry"]

# group in the sample -> (metric level in the series name, the label naming the member)
LEVELS: Mapping[str, tuple[str, str]] = {
    "entrypoints": ("entrypoint", "entrypoint"),
    "routers": ("router", "router"),
    "services": ("service", "service"),
}


@dataclass(frozen=True, slots=True)
class Totals:
    """One entrypoint's, router's or service's counters since the start."""

    requests: float = 0.0
    errors: float = 0.0  # answered 5xx
    # The duration histogram: (upper bound in seconds, cumulative count), ascending, +Inf last.
    buckets: tuple[tuple[float, float], ...] = ()


@dataclass(slots=True)
class Reading:
    """What the sampler reads once per interval."""

    groups: dict[str, dict[str, Totals]] = field(default_factory=dict)
    # Values passed through as they are (open streams, in flight, backends' health...).
    state: dict[str, Any] = field(default_factory=dict)


def quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The q-quantile in seconds of cumulative `buckets`, None without observations."""
    pairs = list(buckets)
    total = pairs[-1][1] if pairs else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in pairs:
        if count >= rank:
            if math.isinf(bound):
                return lower  # the rank is past the last finite bucket: its bound is all we know
            span = count - below
            return lower + (bound - lower) * ((rank - below) / span if span > 0 else 1.0)
        lower, below = bound, count
    return lower


def _minus(now: Totals, before: Totals | None) -> tuple[float, float, list[tuple[float, float]]]:
    if before is None or now.requests < before.requests:  # new, or the counters were reset
        return now.requests, now.errors, list(now.buckets)
    old = dict(before.buckets)
    buckets = [(bound, count - old.get(bound, 0.0)) for bound, count in now.buckets]
    return now.requests - before.requests, now.errors - before.errors, buckets


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


# A previous reading older than this (seconds) is not used: the sampler was stopped meanwhile.
STALE = 5.0


class Sampler:
    """Turns successive readings into samples (the `data` of the feed's `sample` events)."""

    def __init__(self, read: Callable[[], Reading]) -> None:
        self._read = read
        self._before: Reading | None = None
        self._at = 0.0

    def __call__(self, now: float) -> dict[str, Any]:
        reading = self._read()
        before, at = self._before, self._at
        self._before, self._at = reading, now
        if before is not None and now - at > STALE:
            before = None  # sampling stopped meanwhile (nobody watched): no rate over the gap
        interval = now - at if before is not None and now > at else 0.0
        sample: dict[str, Any] = {"interval": round(interval, 3)}
        for group, members in reading.groups.items():
            old = before.groups.get(group, {}) if before is not None else {}
            sample[group] = {
                name: _member(totals, old.get(name), interval) for name, totals in sorted(members.items())
            }
        sample.update(reading.state)
        return sample


def _member(totals: Totals, before: Totals | None, interval: float) -> dict[str, Any]:
    requests, errors, buckets = _minus(totals, before) if interval > 0 else (0.0, 0.0, [])
    return {
        "rate": round(requests / interval, 3) if interval > 0 else 0.0,
        "errors": round(errors / interval, 3) if interval > 0 else 0.0,
        "requests": int(totals.requests),
        "errors_total": int(totals.errors),
        "p50_ms": _ms(quantile(0.5, buckets)),
        "p99_ms": _ms(quantile(0.99, buckets)),
    }


def read_registry(
    registry: Any, prefix: str = "a3s_gateway_", gauges: Sequence[str] = ()
) -> tuple[dict[str, dict[str, Totals]], dict[str, float]]:
    """The request totals of every entrypoint, router and service in a prometheus-client
    registry: `<prefix><level>_requests_total` summed over its other labels (errors: `code`
    5xx), and the `<prefix><level>_request_duration_seconds` histogram summed the same way; and
    each gauge named in `gauges` summed over its labels. One pass over `registry.collect()`,
    which builds every family: the costly part of a sample."""
    requests: dict[str, dict[str, list[float]]] = {g: {} for g in LEVELS}
    buckets: dict[str, dict[str, dict[float, float]]] = {g: {} for g in LEVELS}
    by_family = {f"{prefix}{level}_requests": g for g, (level, _) in LEVELS.items()}
    by_histogram = {f"{prefix}{level}_request_duration_seconds": g for g, (level, _) in LEVELS.items()}
    sums = dict.fromkeys(gauges, 0.0)
    for family in registry.collect():
        if family.name in sums:
            sums[family.name] += sum(s.value for s in family.samples if s.name == family.name)
            continue
        group = by_family.get(family.name)
        if group is not None:
            label = LEVELS[group][1]
            for s in family.samples:
                if s.name.endswith("_total"):
                    counts = requests[group].setdefault(s.labels.get(label, ""), [0.0, 0.0])
                    counts[0] += s.value
                    if str(s.labels.get("code", "")).startswith("5"):
                        counts[1] += s.value
            continue
        group = by_histogram.get(family.name)
        if group is not None:
            label = LEVELS[group][1]
            for s in family.samples:
                if s.name.endswith("_bucket"):
                    member = buckets[group].setdefault(s.labels.get(label, ""), {})
                    bound = float(s.labels["le"])
                    member[bound] = member.get(bound, 0.0) + s.value
    out: dict[str, dict[str, Totals]] = {group: {} for group in LEVELS}
    for group in LEVELS:
        seen, hist = requests[group], buckets[group]
        for name in seen.keys() | hist.keys():
            total, errors = seen.get(name, (0.0, 0.0))
            out[group][name] = Totals(total, errors, tuple(sorted(hist.get(name, {}).items())))
    return out, sums
