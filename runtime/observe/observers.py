"""One pass over a request for both observers: the metrics' count and the access log's line.

`observe` runs once per request when its response head is ready (the graph's
`LiveGraph.serve_observed`), with the metrics (`RequestMeters`), the access log (`AccessLog`) or
both. It reads the request's route, scratch state, retry count and service arrival once for
both, finds the metrics' `Tally` by one dict lookup, takes the log's tuple of raw values, and
registers one end-of-body callback: the log's `line_ended`, which also runs the tally and releases
the graph generation, or (metrics alone) the metrics' `count_ended`. Before, the metrics and the
log each had their own `record` reading the same things: one Python call, and their reads,
more per request (docs/benchmarks.md, "The metrics' cost on the request path").
"""

from __future__ import annotations

from functools import partial
from typing import Any

from ..api import Request, Response
from ..body_end import CountingBody, on_body_end, on_counted_body_end
from .access_log import PROTOCOLS, UNCOUNTED, AccessLog, Held, Values, line_ended, no_callback
from .meters import (
    EVENT_STREAM,
    MIRRORED,
    RETRY_ATTEMPT,
    SERVICE_START,
    EventStreamMeter,
    RequestMeters,
    count_ended,
)
from .tracing import TRACE

__all__ = ["observe"]


def observe(
    request: Request,
    response: Response,
    entrypoint: str,
    start: float,
    now: float,
    meters: RequestMeters | None,
    log: AccessLog | None,
    start_wall: float,
    sent: list[tuple[bytes, bytes]] | None,
    held: Held | None,
) -> Response:
    """Count `request` in `meters` and write its line in `log` (either may be None, not both)
    when `response`'s body is over. `start` and `now` are the monotonic times the request came
    in and its head was ready, `start_wall` the wall-clock start (for the log), `sent` the
    request's fields as the client sent them (when the log has header fields), `held` the graph
    generation that the log's callback releases (None: the graph watches the body itself)."""
    info = request.route
    router = None if info is None else info.router
    state = request.state
    retries = state.get(RETRY_ATTEMPT)
    reached: float | None = state.get(SERVICE_START)
    tally = None
    if meters is not None:
        # Traefik's `protocol` label: websocket, sse (the client accepts an event stream), grpc
        # or http; one pass over the request's fields, inline (a call less per request).
        protocol = "http"
        for name, value in request.headers.raw:
            if name == b"upgrade":
                if value.lower() == b"websocket":
                    protocol = "websocket"
                    break
            elif name == b"accept":
                if EVENT_STREAM in value:
                    protocol = "sse"
                    break
            elif name == b"content-type" and value.startswith(b"application/grpc"):
                protocol = "grpc"
                break
        key = (entrypoint, router, response.status, request.method, protocol)
        tally = meters.tallies.get(key) or meters.tally(key, info)
        if tally.retries is not None:
            # The service's retries and mirror copy (set by the retry middleware and the
            # service: rare, counted at once), and its time to first byte.
            if retries:
                tally.retries.inc(retries)
            mirror = state.get(MIRRORED)
            if mirror is not None:
                tally.service.mirrored(mirror)
            if reached is not None:
                tally.service_ttfb.append(now - reached)  # type: ignore[union-attr]
        if tally.route_ttfb is not None:
            tally.route_ttfb.append(now - start)
        # Is the response an event stream? Its first Content-Type says. (A loop, inline, not a
        # dict of the fields: building the dict in C costs more instructions than the few
        # iterations to Content-Type; callgrind, docs/benchmarks.md.)
        if info is not None:
            for name, value in response.headers.raw:
                if name == b"content-type":
                    if value.startswith(EVENT_STREAM):
                        # Counted by its own callback, registered on the body the graph
                        # already watches, before an event stream's meter wraps it.
                        response.body = on_body_end(
                            response.body, partial(count_ended, tally, start, reached)
                        )
                        route = meters.routes.get((info.router, info.service))
                        if route is not None:
                            response.body = EventStreamMeter(response.body, route, start)
                        tally = None
                    break
    if log is None:  # the metrics alone (`observe` is not called with neither)
        if tally is not None:
            response.body = on_body_end(response.body, partial(count_ended, tally, start, reached))
        return response
    # The route (set by the router), the backend and the retry count, read now: a middleware
    # may change the request later, but not what it was routed as. One tuple of raw values
    # (the `_FIELDS` order without duration and response size): no dict, no formatting yet.
    backend = state.get("backend")
    trace = state.get(TRACE)
    version = request.http_version
    values: Values = (
        start_wall,  # a time.time() value: the formatter writes it, if the line is kept
        request.client_ip,
        request.method,
        request.target,  # redacted by line_ended, if the line is kept
        PROTOCOLS.get(version) or f"HTTP/{version}",
        response.status,
        None if backend is None or response.generated else response.status,
        router,
        None if info is None else info.service,
        None if backend is None else backend.url,
        request.content_length or 0,
        now - start,
        retries or 0,
        request.request_id,
        None if trace is None else trace.trace_id,
    )
    extra: dict[str, Any] | None = None
    if log.headers is not None:
        extra = {}
        log.headers.add(sent if sent is not None else request.headers.raw, "request_", extra)
        log.headers.add(response.headers.raw, "downstream_", extra)
    # Counted before the callback is registered: a body already over runs it at once.
    log.writer.pending += 1
    # The body's end is a callback on the body that already counts its bytes (the upstream
    # exchange): no wrapper, no frame per chunk. Others get one counting wrapper. (The first
    # case of `on_counted_body_end` inlined: a call less per request.) The callback is a
    # `partial` of `line_ended`: made in C, no object of ours to initialise per request.
    body = response.body
    counted = getattr(body, "body_bytes", UNCOUNTED)
    if counted is not UNCOUNTED:
        counting: CountingBody = body  # type: ignore[assignment]  # (not cast(): a call)
        if counted is None:
            counting.body_bytes = 0
    else:
        counting = response.body = on_counted_body_end(body, no_callback)
    counting.add_end_callback(
        partial(line_ended, log, values, extra, start, reached, state, tally, held, counting)
    )
    return response
