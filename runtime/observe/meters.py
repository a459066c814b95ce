"""Recording requests: the per-request side of the metrics, kept cheap.

A `RequestMeters` is built with each graph generation (a reload builds a new one beside the
running one). It holds the label children of every entrypoint, router (with its service) and
service; the request series, whose labels also carry the status, method and protocol, are
reached through a `Tally` (tally.py) per kind of request, found by one dict lookup keyed by
(entrypoint, router, status, method, protocol): its children's label values are formatted the
first time a kind is seen, never per request. No path, host or client value is ever a label.

Once per request, when the response head is ready, `observers.observe` (one pass for the
metrics and the access log) finds the request's tally here (`tallies`, else `tally`),
observes the time to first byte, counts retries and mirror copies (read from the request's
scratch state, where the retry middleware and the service left them), and registers one
callback on the response body (`on_body_end`: no wrapper per chunk) that counts the request
and observes its duration when the body is over (with the access log on, the log's callback
does it: one callback and one clock read for both). The tally batches the durations (a list
append per request; the bucketing happens in C when a batch is folded, and before every
read of the registry). A server-sent event stream (a response of type text/event-stream) is
wrapped once more, to count its events and bytes.

The service series count only requests that reached the service: the graph marks them
(`SERVICE_START`, the time the request got past the router's middlewares) when metrics are on.
"""

from __future__ import annotations

import time
from typing import Any

from ..api import BodyStream, RouteInfo
from .metric_names import (
    ENTRYPOINT_DURATION,
    ENTRYPOINT_REQUESTS,
    MIRROR_REQUESTS,
    OPEN_STREAMS,
    ROUTER_DURATION,
    ROUTER_REQUESTS,
    ROUTER_TTFB,
    SERVICE_DURATION,
    SERVICE_REQUESTS,
    SERVICE_RETRIES,
    SERVICE_TTFB,
    SSE_BYTES,
    SSE_EVENTS,
    STREAM_DURATION,
    Series,
)
from .metrics import GatewayMetrics
from .tally import Tally, Target
from .tapped_body import TappedBody

__all__ = [
    "EVENT_STREAM",
    "MIRRORED",
    "RETRY_ATTEMPT",
    "SERVICE_START",
    "EventStreamMeter",
    "RequestMeters",
    "count_ended",
]

# request.state keys: when the request reached its service (monotonic seconds); the mirror
# service a shadow copy went to (set by runtime/service.py); the retry middleware's attempt.
SERVICE_START = "metrics.service_start"
MIRRORED = "metrics.mirrored"
RETRY_ATTEMPT = "retry_attempt"

# Traefik's rule: a method outside this set is counted as EXTENSION_METHOD, so a client cannot
# grow the number of series by inventing methods.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
_EXTENSION = "EXTENSION_METHOD"
EVENT_STREAM = b"text/event-stream"
_LINE_ENDS = (b"\n", b"\r")

Key = tuple[int, str, str]


class _Requests:
    """The children of one requests counter / duration histogram pair, by (code, method,
    protocol), for one entrypoint, router or service."""

    __slots__ = ("_counter", "_histogram", "_prefix")

    def __init__(self, metrics: GatewayMetrics, requests: Series, duration: Series, prefix: tuple[str, ...]):
        self._counter, self._histogram = metrics.metric(requests), metrics.metric(duration)
        self._prefix = prefix

    def pair(self, key: Key) -> Target:
        """The pair of children for `key` (their label values formatted once: the tally that
        holds them is made once per kind of request)."""
        labels = (*self._prefix, str(key[0]), key[1], key[2])
        return self._counter.labels(*labels), self._histogram.labels(*labels)


class _Route:
    """A router (with its service): its request series when `add_routers_labels`, its time to
    first byte, and its event streams."""

    __slots__ = ("events", "open_streams", "requests", "sse_bytes", "stream_duration", "ttfb")

    def __init__(self, metrics: GatewayMetrics, router: str, service: str, with_requests: bool) -> None:
        labels = (router, service)
        self.requests = (
            _Requests(metrics, ROUTER_REQUESTS, ROUTER_DURATION, labels) if with_requests else None
        )
        self.ttfb: Any = metrics.metric(ROUTER_TTFB).labels(*labels) if with_requests else None
        self.events = metrics.metric(SSE_EVENTS).labels(*labels)
        self.sse_bytes = metrics.metric(SSE_BYTES).labels(*labels)
        self.open_streams = metrics.metric(OPEN_STREAMS).labels(*labels)
        self.stream_duration = metrics.metric(STREAM_DURATION).labels(*labels)


class _Service:
    __slots__ = ("_metrics", "_mirrors", "name", "requests", "retries", "ttfb")

    def __init__(self, metrics: GatewayMetrics, name: str, with_requests: bool) -> None:
        self.name = name
        self.requests = (
            _Requests(metrics, SERVICE_REQUESTS, SERVICE_DURATION, (name,)) if with_requests else None
        )
        self.ttfb = metrics.metric(SERVICE_TTFB).labels(name)
        self.retries = metrics.metric(SERVICE_RETRIES).labels(name)
        self._metrics = metrics
        self._mirrors: dict[str, Any] = {}

    def mirrored(self, mirror: str) -> None:
        child = self._mirrors.get(mirror)
        if child is None:
            child = self._mirrors[mirror] = self._metrics.metric(MIRROR_REQUESTS).labels(self.name, mirror)
        child.inc()


# What a generation finds a request's tally by: (entrypoint, router, status, method, protocol).
# The router's name stands for its service too (fixed within a generation); a method outside
# `_METHODS` is never a key (clients invent them), its tally is found the slow way.
TallyKey = tuple[str, str | None, int, str, str]


class RequestMeters:
    """The meters of one graph generation (see the module docstring)."""

    def __init__(
        self,
        metrics: GatewayMetrics,
        entrypoints: list[str],
        routers: list[tuple[str, str]],
        services: list[str],
        *,
        entrypoint_labels: bool = True,
        router_labels: bool = False,
        service_labels: bool = True,
    ) -> None:
        self.metrics = metrics
        self.entrypoints = (
            {e: _Requests(metrics, ENTRYPOINT_REQUESTS, ENTRYPOINT_DURATION, (e,)) for e in entrypoints}
            if entrypoint_labels
            else {}
        )
        self.routes = {(r, s): _Route(metrics, r, s, router_labels) for r, s in routers}
        self.services = {s: _Service(metrics, s, service_labels) for s in services}
        # The tallies by kind of request (`observers.observe` looks a request's up).
        self.tallies: dict[TallyKey, Tally] = {}

    def tally(self, key: TallyKey, info: RouteInfo | None) -> Tally:
        """The tally of a kind of request seen for the first time in this generation: shared
        with every generation that updates the same children (`GatewayMetrics.tally`, by their
        label values), so a reload loses no pending value and the tallies are as bounded as
        the label values. Its requests children are made when a request is first counted."""
        entrypoint, _router, status, method, protocol = key
        labels: Key = (status, method if method in _METHODS else _EXTENSION, protocol)
        entry = self.entrypoints.get(entrypoint)
        route = None if info is None else self.routes.get((info.router, info.service))
        routed = route.requests if route is not None else None
        service = None if info is None else self.services.get(info.service)
        served = service.requests if service is not None else None
        shared = (
            None if entry is None else entrypoint,
            None if routed is None or info is None else (info.router, info.service),
            None if service is None else (service.name, served is not None),
            labels,
        )

        def make(local: bool) -> Tally:
            def elapsed() -> list[Target]:
                return [meter.pair(labels) for meter in (entry, routed) if meter is not None]

            def reached() -> list[Target]:
                return [served.pair(labels)] if served is not None else []

            route_ttfb = route.ttfb if route is not None else None
            return Tally(elapsed, reached, route_ttfb, service, local)

        tally = self.metrics.tally(shared, make)
        if method in _METHODS:
            self.tallies[key] = tally
        return tally


def count_ended(tally: Tally, start: float, reached: float | None, _error: BaseException | None) -> None:
    """A request's end-of-body callback for the metrics alone (through a `partial`: made in C,
    no object of ours to initialise per request)."""
    tally.ended(start, reached, time.monotonic())


class EventStreamMeter(TappedBody):
    """A server-sent event stream's body: counts the events (each ends with a blank line,
    WHATWG HTML §9.2.6) and bytes relayed, and the stream as open until it is over."""

    __slots__ = ("_route", "_start", "_tail")

    def __init__(self, body: BodyStream, route: _Route, start: float) -> None:
        super().__init__(body)
        self._route, self._start = route, start
        # The stream's last three bytes: a blank line may be split over two chunks (the
        # upstream's reads cut the stream anywhere).
        self._tail = b""
        route.open_streams.inc()

    def _seen(self, chunk: bytes) -> None:
        route = self._route
        route.sse_bytes.inc(len(chunk))
        events = _blank_lines(chunk)
        tail = self._tail
        if tail and chunk[:1] in _LINE_ENDS:  # only then can a blank line span the two chunks
            head = chunk[:3]
            events += _blank_lines(tail + head) - _blank_lines(tail) - _blank_lines(head)
        self._tail = chunk[-3:] if len(chunk) >= 3 else (tail + chunk)[-3:]
        if events:
            route.events.inc(events)

    def _over(self) -> None:
        route = self._route
        route.open_streams.dec()
        route.stream_duration.observe(time.monotonic() - self._start)


def _blank_lines(data: bytes) -> int:
    return data.count(b"\n\n") + data.count(b"\r\n\r\n")
