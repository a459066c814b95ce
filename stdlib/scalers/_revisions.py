"""Revisions of a service: per-revision statistics, the traffic split and tag routing.

* `RevisionStats` counts one revision's requests, errors and latencies in one-second buckets
  (time is a parameter) and answers "how did it do since t": request count, error count and
  p99 from a log-scale latency histogram (buckets grow by 10 %, so the p99 it reports is at most
  10 % above the true one and never below it). Old buckets are dropped past `retention`.
* `split_traffic` turns configured percentages plus a rollout's percentage into weights: the
  rollout moves the combined share of `from` and `to` between the two, other revisions keep theirs.
* `pick_revision` chooses a revision by weight from a uniform number in [0, 1).
* `pinned_revision` implements tag routing (Knative's tags): a header (`x-a3s-revision` by
  default) or a cookie naming a revision or its tag sends the request there, whatever the split.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ...runtime.api import Headers
from ._rollout import StepStats

__all__ = ["RevisionStats", "pick_revision", "pinned_revision", "split_traffic"]

_GROWTH = 1.1
_FIRST_MS = 0.1  # bucket 0 holds everything up to 0.1 ms


def _bucket(latency_ms: float) -> int:
    if latency_ms <= _FIRST_MS:
        return 0
    return 1 + math.floor(math.log(latency_ms / _FIRST_MS, _GROWTH) - 1e-12)


def _upper(bucket: int) -> float:
    return _FIRST_MS * _GROWTH**bucket


@dataclass(slots=True)
class _Second:
    at: int
    requests: int = 0
    errors: int = 0
    histogram: dict[int, int] = field(default_factory=dict)


class RevisionStats:
    """Request count, error count and latency histogram of one revision, by second."""

    def __init__(self, name: str, retention: float = 600.0) -> None:
        self.name = name
        self.retention = retention
        self._seconds: deque[_Second] = deque()
        self.total_requests = 0
        self.total_errors = 0

    def record(self, now: float, latency_s: float, error: bool) -> None:
        at = math.floor(now)
        if not self._seconds or self._seconds[-1].at < at:
            self._seconds.append(_Second(at))
            while self._seconds and self._seconds[0].at < at - self.retention:
                self._seconds.popleft()
        second = self._seconds[-1] if self._seconds[-1].at <= at else self._find(at)
        second.requests += 1
        second.errors += int(error)
        key = _bucket(latency_s * 1000.0)
        second.histogram[key] = second.histogram.get(key, 0) + 1
        self.total_requests += 1
        self.total_errors += int(error)

    def _find(self, at: int) -> _Second:
        # A late sample (clock jitter): attribute it to the oldest bucket not after it.
        for second in reversed(self._seconds):
            if second.at <= at:
                return second
        return self._seconds[0]

    def since(self, start: float, now: float | None = None) -> StepStats:
        """Totals over the seconds from `start` (inclusive, by second) up to `now`."""
        first = math.floor(start)
        last = math.inf if now is None else math.floor(now)
        requests = errors = 0
        histogram: dict[int, int] = {}
        for second in self._seconds:
            if first <= second.at <= last:
                requests += second.requests
                errors += second.errors
                for key, n in second.histogram.items():
                    histogram[key] = histogram.get(key, 0) + n
        return StepStats(requests, errors, _percentile(histogram, requests, 0.99))

    def snapshot(self, now: float, window: float = 60.0) -> dict[str, float | int | str]:
        recent = self.since(now - window, now)
        return {
            "name": self.name,
            "requests": self.total_requests,
            "errors": self.total_errors,
            "recent_requests": recent.requests,
            "recent_error_rate": recent.error_rate,
            "recent_p99_ms": recent.p99_ms,
        }


def _percentile(histogram: Mapping[int, int], total: int, q: float) -> float:
    if total == 0:
        return 0.0
    rank = math.ceil(q * total)
    seen = 0
    for key in sorted(histogram):
        seen += histogram[key]
        if seen >= rank:
            return _upper(key)
    return _upper(max(histogram))


def split_traffic(
    percents: Mapping[str, float], rollout: tuple[str, str, float] | None = None
) -> dict[str, float]:
    """Weights per revision: the configured percentages, with a rollout applied.

    `rollout` is (from, to, percentage of the pair's share that goes to `to`).
    """
    weights = dict(percents)
    if rollout is not None:
        src, dst, pct = rollout
        share = weights.get(src, 0.0) + weights.get(dst, 0.0)
        if share <= 0:
            share = 100.0 - sum(v for k, v in weights.items() if k not in (src, dst))
        share = max(share, 0.0)
        weights[dst] = share * pct / 100.0
        weights[src] = share - weights[dst]
    return weights


def pick_revision(weights: Mapping[str, float], u: float) -> str | None:
    """The revision that the uniform number `u` in [0, 1) falls on; None when all weigh 0."""
    total = sum(w for w in weights.values() if w > 0)
    if total <= 0:
        return None
    point = u * total
    chosen: str | None = None
    for name, weight in weights.items():
        if weight <= 0:
            continue
        chosen = name
        if point < weight:
            return name
        point -= weight
    return chosen


def pinned_revision(
    headers: Headers,
    revisions: Iterable[tuple[str, str | None]],
    header: str = "x-a3s-revision",
    cookie: str | None = None,
) -> str | None:
    """The revision a request pins by header or cookie (matching a name or a tag), else None.

    `revisions` is (name, tag) pairs. The header wins over the cookie. An unknown value is
    ignored: the request follows the split, as Knative does for an unknown tag.
    """
    by_key: dict[str, str] = {}
    for name, tag in revisions:
        by_key.setdefault(name, name)
        if tag:
            by_key.setdefault(tag, name)
    wanted: Sequence[str] = [v.strip() for v in headers.get_all(header)] if header else []
    if cookie:
        wanted = [*wanted, *_cookie_values(headers, cookie)]
    for value in wanted:
        if value in by_key:
            return by_key[value]
    return None


def _cookie_values(headers: Headers, name: str) -> list[str]:
    out: list[str] = []
    for line in headers.get_all("cookie"):
        for part in line.split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key == name:
                out.append(value.strip().strip('"'))
    return out
