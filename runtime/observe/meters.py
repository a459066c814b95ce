"""Recording requests: the per-request side of the metrics, kept cheap.

A `RequestMeters` is built with each graph generation (a reload builds a new one beside the
running one). It holds a `_Meter` per entrypoint, router and service, each with a cache of its
label children keyed by `(status, method, protocol)`: a request looks its children up in a
dict, and formats a label value only the first time a combination is seen. No path, host or
client value is ever read for a label.

`record` runs once per request, when the response head is ready (the gateway's dispatch), and
registers one callback on the response body (`on_body_end`: no wrapper per chunk) that counts
the request and observes its duration when the body is over. The service series count only
requests that reached the service: the graph marks them (`SERVICE_START`, the time the request
got past the router's middlewares) when metrics are on.
"""

from __future__ import annotations

import time
from typing import Any

from ..api import Request, Response
from ..body_end import on_body_end
from .metric_names import (
    ENTRYPOINT_DURATION,
    ENTRYPOINT_REQUESTS,
    ROUTER_DURATION,
    ROUTER_REQUESTS,
    SERVICE_DURATION,
    SERVICE_REQUESTS,
    Series,
)
from .metrics import GatewayMetrics

__all__ = ["SERVICE_START", "RequestMeters", "protocol_of"]

# request.state key: when the request reached its service (monotonic seconds).
SERVICE_START = "metrics.service_start"

# Traefik's rule: a method outside this set is counted as EXTENSION_METHOD, so a client cannot
# grow the number of series by inventing methods.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
_EXTENSION = "EXTENSION_METHOD"

Key = tuple[int, str, str]


def protocol_of(request: Request) -> str:
    """Traefik's `protocol` label: websocket, sse (the client accepts an event stream), grpc, or
    http. One pass over the request's fields."""
    for name, value in request.headers.raw:
        if name == b"upgrade":
            if value.lower() == b"websocket":
                return "websocket"
        elif name == b"accept":
            if b"text/event-stream" in value:
                return "sse"
        elif name == b"content-type" and value.startswith(b"application/grpc"):
            return "grpc"
    return "http"


class _Meter:
    """The children of one counter/histogram pair for one entrypoint, router or service."""

    __slots__ = ("_children", "_counter", "_histogram", "_prefix")

    def __init__(self, counter: Any, histogram: Any, prefix: tuple[str, ...]) -> None:
        self._counter, self._histogram, self._prefix = counter, histogram, prefix
        self._children: dict[Key, tuple[Any, Any]] = {}

    def children(self, key: Key) -> tuple[Any, Any]:
        found = self._children.get(key)
        if found is None:
            labels = (*self._prefix, str(key[0]), key[1], key[2])
            found = self._children[key] = (self._counter.labels(*labels), self._histogram.labels(*labels))
        return found


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

        def meters(requests: Series, duration: Series, keys: list[tuple[str, ...]]) -> dict[Any, _Meter]:
            counter, histogram = metrics.metric(requests), metrics.metric(duration)
            return {key if len(key) > 1 else key[0]: _Meter(counter, histogram, key) for key in keys}

        self.entrypoints = (
            meters(ENTRYPOINT_REQUESTS, ENTRYPOINT_DURATION, [(e,) for e in entrypoints])
            if entrypoint_labels
            else {}
        )
        self.routers = meters(ROUTER_REQUESTS, ROUTER_DURATION, list(routers)) if router_labels else {}
        self.services = (
            meters(SERVICE_REQUESTS, SERVICE_DURATION, [(s,) for s in services]) if service_labels else {}
        )

    def record(self, request: Request, response: Response, entrypoint: str, start: float) -> None:
        """Count `request` when `response`'s body is over."""
        method = request.method
        key = (response.status, method if method in _METHODS else _EXTENSION, protocol_of(request))
        meters: list[tuple[_Meter, float]] = []
        meter = self.entrypoints.get(entrypoint)
        if meter is not None:
            meters.append((meter, start))
        route = request.route
        if route is not None:
            meter = self.routers.get((route.router, route.service))
            if meter is not None:
                meters.append((meter, start))
            service_start: float | None = request.state.get(SERVICE_START)
            meter = self.services.get(route.service) if service_start is not None else None
            if meter is not None and service_start is not None:
                meters.append((meter, service_start))
        if meters:
            response.body = on_body_end(response.body, _Done(meters, key).done)


class _Done:
    """What a request's end-of-body callback needs: one small object, no closure per meter."""

    __slots__ = ("_key", "_meters")

    def __init__(self, meters: list[tuple[_Meter, float]], key: Key) -> None:
        self._meters, self._key = meters, key

    def done(self, _error: BaseException | None) -> None:
        now = time.monotonic()
        key = self._key
        for meter, start in self._meters:
            counter, histogram = meter.children(key)
            counter.inc()
            histogram.observe(now - start)
