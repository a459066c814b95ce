"""Recording requests: the per-request side of the metrics, kept cheap.

A `RequestMeters` is built with each graph generation (a reload builds a new one beside the
running one). It holds the label children of every entrypoint, router (with its service) and
service, created when it is built; the request series, whose labels also carry the status,
method and protocol, keep a cache keyed by `(status, method, protocol)` and format a label value
only the first time a combination is seen. No path, host or client value is ever a label.

`record` runs once per request, when the response head is ready (the gateway's dispatch): it
observes the time to first byte, counts retries and mirror copies (read from the request's
scratch state, where the retry middleware and the service left them), and registers one
callback on the response body (`on_body_end`: no wrapper per chunk) that counts the request
and observes its duration when the body is over. A server-sent event stream (a response of
type text/event-stream) is wrapped once more, to count its events and bytes.

The service series count only requests that reached the service: the graph marks them
(`SERVICE_START`, the time the request got past the router's middlewares) when metrics are on.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from typing import Any

from ..api import BodyStream, Request, Response
from ..body_end import on_body_end
from .local_metrics import LocalCounter, LocalHistogram
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
from .tapped_body import TappedBody

__all__ = ["MIRRORED", "RETRY_ATTEMPT", "SERVICE_START", "MeteredEnd", "RequestMeters", "protocol_of"]

# request.state keys: when the request reached its service (monotonic seconds); the mirror
# service a shadow copy went to (set by runtime/service.py); the retry middleware's attempt.
SERVICE_START = "metrics.service_start"
MIRRORED = "metrics.mirrored"
RETRY_ATTEMPT = "retry_attempt"

# Traefik's rule: a method outside this set is counted as EXTENSION_METHOD, so a client cannot
# grow the number of series by inventing methods.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
_EXTENSION = "EXTENSION_METHOD"
_EVENT_STREAM = b"text/event-stream"
_LINE_ENDS = (b"\n", b"\r")

Key = tuple[int, str, str]


def protocol_of(request: Request) -> str:
    """Traefik's `protocol` label: websocket, sse (the client accepts an event stream), grpc, or
    http. One pass over the request's fields."""
    for name, value in request.headers.raw:
        if name == b"upgrade":
            if value.lower() == b"websocket":
                return "websocket"
        elif name == b"accept":
            if _EVENT_STREAM in value:
                return "sse"
        elif name == b"content-type" and value.startswith(b"application/grpc"):
            return "grpc"
    return "http"


def _is_event_stream(response: Response) -> bool:
    for name, value in response.headers.raw:
        if name == b"content-type":
            return value.startswith(_EVENT_STREAM)
    return False


class _Requests:
    """The children of one requests counter / duration histogram pair, by (code, method,
    protocol), for one entrypoint, router or service."""

    __slots__ = ("_counter", "_histogram", "_prefix", "pairs")

    def __init__(self, metrics: GatewayMetrics, requests: Series, duration: Series, prefix: tuple[str, ...]):
        self._counter, self._histogram = metrics.metric(requests), metrics.metric(duration)
        self._prefix = prefix
        # Read directly by `MeteredEnd.at` (a method call per request and level saved).
        self.pairs: dict[Key, _LocalPair | _ClientPair] = {}

    def pair(self, key: Key) -> _LocalPair | _ClientPair:
        """The pair of children for `key` (made, and its label values formatted, once)."""
        labels = (*self._prefix, str(key[0]), key[1], key[2])
        counter, histogram = self._counter.labels(*labels), self._histogram.labels(*labels)
        local = isinstance(counter, LocalCounter) and isinstance(histogram, LocalHistogram)
        found = self.pairs[key] = _LocalPair(counter, histogram) if local else _ClientPair(counter, histogram)
        return found


class _LocalPair:
    """A count and a duration in one call: `LocalFamily` children, updated in place."""

    __slots__ = ("bounds", "counter", "counts", "histogram")

    def __init__(self, counter: LocalCounter, histogram: LocalHistogram) -> None:
        self.counter, self.histogram = counter, histogram
        self.bounds, self.counts = histogram.bounds, histogram.counts

    def record(self, seconds: float) -> None:
        self.counter.value += 1
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.histogram.sum += seconds


class _ClientPair:
    """The same for prometheus-client's children (`--workers`: multiprocess mode)."""

    __slots__ = ("counter", "histogram")

    def __init__(self, counter: Any, histogram: Any) -> None:
        self.counter, self.histogram = counter, histogram

    def record(self, seconds: float) -> None:
        self.counter.inc()
        self.histogram.observe(seconds)


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

    def record(
        self,
        request: Request,
        response: Response,
        entrypoint: str,
        start: float,
        now: float,
        share: bool = False,
    ) -> MeteredEnd | None:
        """Count `request` when `response`'s body is over (see the module docstring); `now` is
        the monotonic time its head was ready. With `share` (the access log is on too) the count
        is returned instead of registered, when it can be: the log's end callback runs it, one
        callback and one clock read for both."""
        method = request.method
        key = (response.status, method if method in _METHODS else _EXTENSION, protocol_of(request))
        entry = self.entrypoints.get(entrypoint)
        routed = served = route = None
        service_start = 0.0
        info = request.route
        if info is not None:
            route = self.routes.get((info.router, info.service))
            if route is not None and route.requests is not None:
                routed = route.requests
                route.ttfb.observe(now - start)
            service = self.services.get(info.service)
            if service is not None:
                # The service's retries, mirror copy and time to first byte, and its request
                # meter when the request reached it (inline: a call and a tuple less per request).
                state = request.state
                retries = state.get(RETRY_ATTEMPT)
                if retries:
                    service.retries.inc(retries)
                mirror = state.get(MIRRORED)
                if mirror is not None:
                    service.mirrored(mirror)
                reached: float | None = state.get(SERVICE_START)
                if reached is not None:
                    ttfb = service.ttfb
                    if type(ttfb) is LocalHistogram:  # its `observe`, inlined
                        ttfb.counts[bisect_left(ttfb.bounds, now - reached)] += 1
                        ttfb.sum += now - reached
                    else:
                        ttfb.observe(now - reached)
                    served, service_start = service.requests, reached
        done = None
        if entry is not None or routed is not None or served is not None:
            done = MeteredEnd(key, start, entry, routed, served, service_start)
        if route is not None and _is_event_stream(response):
            # Registered on the body the graph already watches (no wrapper of its own), before
            # an event stream's meter wraps it.
            if done is not None:
                response.body = on_body_end(response.body, done.done)
            response.body = EventStreamMeter(response.body, route, start)
            return None
        if done is not None and not share:
            response.body = on_body_end(response.body, done.done)
            return None
        return done


class MeteredEnd:
    """What a request's end-of-body callback needs: one small object, no closure or list.
    `done` is the callback; `at(now)` is the same for a caller that read the clock already."""

    __slots__ = ("_entry", "_key", "_routed", "_served", "_service_start", "_start")

    def __init__(
        self,
        key: Key,
        start: float,
        entry: _Requests | None,
        routed: _Requests | None,
        served: _Requests | None,
        service_start: float,
    ) -> None:
        self._key, self._start = key, start
        self._entry, self._routed, self._served = entry, routed, served
        self._service_start = service_start

    def done(self, _error: BaseException | None) -> None:
        self.at(time.monotonic())

    def at(self, now: float) -> None:
        # `_LocalPair.record` inlined (a call less per level and request); prometheus-client's
        # children (`_ClientPair`, under --workers) are recorded by their method.
        key, served = self._key, self._served
        elapsed = now - self._start
        for meter in (self._entry, self._routed, served):
            if meter is not None:
                if meter is served:  # the last: timed from when the request reached the service
                    elapsed = now - self._service_start
                pair = meter.pairs.get(key) or meter.pair(key)
                if type(pair) is _LocalPair:
                    pair.counter.value += 1
                    pair.counts[bisect_left(pair.bounds, elapsed)] += 1
                    pair.histogram.sum += elapsed
                else:
                    pair.record(elapsed)


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
