"""GET /api/gateway/live: the live feed, as Server-Sent Events or over a WebSocket.

One event per state change (`reload`, `health`, `agent_state`, `scale`, `replicas`, `rollout`)
and a `sample` once per second (rates, latencies, in flight, open streams, backends), each with
its name and a JSON object (docs/observability.md lists the shapes). The feed starts with
`hello` and ends with `end` (`reason`: shutdown, reload); the stream then ends cleanly: the SSE
body is over, a WebSocket gets a close frame (1001 going away on shutdown, 1012 service restart
on reload).

- SSE (`text/event-stream`, the default): `event: <name>`, `id: <seq>`, `data: <json>`; a
  comment line (`: heartbeat`) after `heartbeat` seconds without an event; `retry: 1000` so
  that an EventSource reconnects within a second after a reload.
- WebSocket (a GET with `Upgrade: websocket`, or HTTP/2's extended CONNECT): one text message
  per event, `{"event": <name>, "data": {...}}`; a ping after `heartbeat` seconds of silence.
  The upgrade is answered here and the connection's WebSocket relay carries the frames, as for
  a proxied WebSocket (idle timeout, close handshake, HTTP/2 included): its far side is
  `FeedSocket`, an in-process byte stream that speaks WebSocket frames from the feed.

Query: `events=sample,health,...` keeps only those events (`hello` and `end` always come);
`heartbeat=<seconds>` (1 to 300, default 15).

A slow client never makes the gateway buffer: its feed is a bounded queue (see
runtime/observe/hub.py), drained as fast as the connection writes.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from ..api import Headers, Request, Response, Upgraded
from ..observe.hub import RELAYED, FeedEnded, FeedEvent, LiveFeed
from ..observe.live_sample import Reading, Totals, read_registry
from ..observe.metric_names import OPEN_STREAMS
from ..protocols.websocket import accept_key
from .feed_socket import FeedSocket
from .host import AdminHost
from .inventory import backends
from .responses import error

if TYPE_CHECKING:
    from ..graph import LiveGraph

__all__ = ["EVENTS", "encode_sse", "live", "live_reading"]

EVENTS = RELAYED | {"sample"}  # what a client may ask for: the state changes and the samples
DEFAULT_HEARTBEAT = 15.0


class FeedOptions:
    __slots__ = ("events", "heartbeat")

    def __init__(self, events: frozenset[str] | None, heartbeat: float) -> None:
        self.events = events
        self.heartbeat = heartbeat


def _options(query: str) -> FeedOptions | str:
    """The feed's options, or the reason they are invalid."""
    params = parse_qs(query)
    events: frozenset[str] | None = None
    if "events" in params:
        events = frozenset(e.strip() for v in params["events"] for e in v.split(",") if e.strip())
        unknown = sorted(events - EVENTS)
        if unknown:
            return f"unknown event {unknown[0]!r}; the events are " + ", ".join(sorted(EVENTS))
    heartbeat = DEFAULT_HEARTBEAT
    if "heartbeat" in params:
        try:
            heartbeat = float(params["heartbeat"][-1])
        except ValueError:
            heartbeat = -1.0
        if not 1.0 <= heartbeat <= 300.0:
            return "heartbeat must be a number of seconds from 1 to 300"
    return FeedOptions(events, heartbeat)


def _hello(graph: LiveGraph, options: FeedOptions, interval: float) -> FeedEvent:
    events = sorted(options.events if options.events is not None else EVENTS)
    data = {"generation": graph.generation, "interval": interval, "events": events}
    return FeedEvent("hello", {"seq": 0, "time": round(time.time(), 3), **data})


async def live(graph: LiveGraph, host: AdminHost | None, request: Request) -> Response:
    if host is None:
        return error(503, "unavailable", "the live feed needs a running gateway")
    options = _options(request.query)
    if isinstance(options, str):
        return error(400, "bad_request", options)
    upgrade = (request.headers.get("upgrade") or "").lower()
    if "websocket" in upgrade:
        return _websocket(graph, host, request, options)
    feed = host.live_feed(options.events)
    headers = Headers.from_pairs(
        [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-store"),
            ("x-accel-buffering", "no"),  # nginx in front: pass each event on at once
        ]
    )
    hello = _hello(graph, options, feed.interval)
    return Response(200, headers, _sse(feed, options, hello), generated=True)


def encode_sse(event: FeedEvent) -> bytes:
    data = json.dumps(event.data, separators=(",", ":"), default=str)
    return f"event: {event.name}\nid: {event.data.get('seq', 0)}\ndata: {data}\n\n".encode()


async def _sse(feed: LiveFeed, options: FeedOptions, hello: FeedEvent) -> AsyncGenerator[bytes, None]:
    try:
        yield b"retry: 1000\n\n" + encode_sse(hello)
        while True:
            try:
                event = await feed.next(options.heartbeat)
            except FeedEnded:
                return
            yield b": heartbeat\n\n" if event is None else encode_sse(event)
    finally:
        feed.close()


def _websocket(graph: LiveGraph, host: AdminHost, request: Request, options: FeedOptions) -> Response:
    key = request.headers.get("sec-websocket-key")
    if request.method != "GET" or not key:
        return error(
            400, "bad_request", "a WebSocket upgrade is a GET with Sec-WebSocket-Key (RFC 6455 §4.1)"
        )
    if request.headers.get("sec-websocket-version") not in (None, "13"):
        # RFC 6455 §4.4: the versions we speak.
        return error(426, "upgrade_required", "WebSocket version 13 only", [("sec-websocket-version", "13")])
    feed = host.live_feed(options.events)
    socket = FeedSocket(feed, options.heartbeat, _hello(graph, options, feed.interval))
    headers = Headers.from_pairs(
        [
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
            ("sec-websocket-accept", accept_key(key.encode("latin-1")).decode()),
        ]
    )
    return Response(101, headers, upgrade=Upgraded(socket), generated=True)


def live_reading(graph: LiveGraph, health: Mapping[str, Any], registry: Any = None) -> Reading:
    """What a sample reads: the request totals of the gateway's metrics registry (None when the
    configuration has no metrics: then only each entrypoint's request count, from its
    listener), and the gateway's state as it is now."""
    stats = health.get("entrypoints", {})
    state: dict[str, Any] = {
        "generation": graph.generation,
        "in_flight": sum(s["in_flight"] for s in stats.values()),
        "connections": sum(s["connections"] for s in stats.values()),
        "backends": [
            {k: b[k] for k in ("service", "url", "healthy", "in_flight", "revision", "latency")}
            for b in backends(graph)
        ],
    }
    if registry is None:
        groups = {"entrypoints": {name: Totals(float(s["requests"])) for name, s in stats.items()}}
        state["open_streams"] = None
        return Reading(groups, state)
    groups, gauges = read_registry(registry, gauges=(OPEN_STREAMS.name,))
    state["open_streams"] = int(gauges[OPEN_STREAMS.name])
    return Reading(groups, state)
