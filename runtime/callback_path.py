"""The callback path: the usual proxied HTTP/1.1 request, served by the event loop's callbacks.

A request through the general path (connection.py, graph.py, service.py, proxy.py,
upstream/client.py) crosses a dozen layers, each a coroutine or a call over event objects:
about 4,000 bytecodes per request, where the least a Python relay can do is a few hundred
(docs/benchmarks.md, "The floor of a Python proxy"). This module is that floor's shape for
the common case, on asyncio and uvloop only (their transports call us; trio keeps the general
path): while a client connection waits, the loop hands its bytes to `CallbackCycle.sink_data`;
a request that the router sends to a *direct* route is routed, picked, forwarded and relayed
from there, the upstream's bytes arriving in `CallbackExchange.sink_data` and written to the
client from the same call. No task, coroutine or future per request.

What stays the general path's (each decided before anything was sent, so nothing is done
twice): requests with a body, an Upgrade or a gRPC content type; routes with middlewares,
services that mirror, fail over, scale, pin sessions or pick by the body, and any service
with a non-`http://` server (`DirectRoute.of`); tracing. Those requests are handed to the
connection's coroutine (`HttpConnection._serve`), which serves them as before and then gives
the connection back to the callbacks.

The callback path does everything the general path does for its requests, with the same
objects and the same functions where they exist: the adapters (http1.py or http1_fast.py, so
the differential tests against h11 cover its parsing), `build_request`, the router table, the
service's balancer and health (`HttpService.head_arrived`, `_failed`), the header hygiene
(`proxy._headers_up`, `clean_response`), the pool, the deadlines (the listener's ticker and
`DeadlineWatch`), the observers (`observers.observe`, whose end callbacks the exchange runs),
and the graph generation's in-flight count. What has to wait (a new upstream connection, an
error response, a refusal) is handed to the connection's task as a *slow step*: an async
function the task runs before giving the connection back to the callbacks.

Backpressure is the general path's: the client transport's write buffer limit is zero, so a
client that does not keep up pauses the upstream transport's reading until it drains
(and its write deadline runs meanwhile); memory stays bounded by one read per stream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Union

from ..compiler.schema import ProxyConfig
from .api import NO_BODY, Backend, Headers, Request, Response
from .body_end import EndCallback
from .errors import (
    CONNECT_FAILURES,
    BadGateway,
    BadRequest,
    ClientClosed,
    GatewayError,
    GatewayTimeout,
    NoHealthyBackend,
)
from .events import (
    END_OF_BODY,
    Body,
    EndOfBody,
    Event,
    InformationalResponse,
    RequestHead,
    ResponseHead,
    Trailers,
)
from .ingress import build_request
from .observe.meters import SERVICE_START
from .observe.observers import observe
from .observe.tapped_body import TappedBody
from .pipeline import recover
from .protocols import ProtocolError
from .proxy import _headers_up, _name_of, clean_response
from .upstream.client import INLINE_BODY_MAX, UpstreamClient
from .upstream.pool import ConnectionPool, UpstreamConnection, parse_origin

if TYPE_CHECKING:
    from .asyncio_stream import AsyncioSocketStream
    from .connection import HttpConnection
    from .graph import LiveGraph
    from .observe.access_log import AccessLog
    from .service import HttpService

__all__ = ["CallbackCycle", "DirectRoute", "DirectSource", "SlowStep"]

log = logging.getLogger("a3s_gateway.connection")

INF = float("inf")
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
# A field that may send a request the general way: a protocol switch; gRPC (its deadline header
# bounds the exchange, and its errors are trailers), which its Content-Type says.
_GENERAL_FIELDS = frozenset({b"upgrade", b"content-type"})
_GRPC = b"application/grpc"
_COALESCE_MAX = 16384
_CLOSE = (b"connection", b"close")
_CLOSED: Event = object()  # type: ignore[assignment]  # an EOF the adapter made no event of

_NOTHING = object()  # no outcome queued

SlowStep = Callable[[], Awaitable[None]]
"""Work of the callback path that has to wait, run by the connection's task."""

# What the callbacks hand the connection's task: a request head for the general path, a slow
# step to run, or None when the connection is over.
Outcome = Union[RequestHead, SlowStep, None]  # noqa: UP007 (a runtime alias)

DirectSource = Callable[[], "tuple[LiveGraph, str, AccessLog | None, bool]"]
"""The gateway's current generation, the listener's entrypoint name, the access log and
whether tracing is on, read once per request (a reload may change any of them)."""


class DirectRoute:
    """What a router's match carries when its requests may take the callback path."""

    __slots__ = ("client", "host", "service", "timeouts")

    def __init__(self, service: HttpService, client: UpstreamClient, config: ProxyConfig) -> None:
        self.service = service
        self.client = client
        self.timeouts = config.timeouts
        self.host: bool = not config.pass_host_header  # whether Host is the backend's authority

    @classmethod
    def of(
        cls, service: Any, client: Any, config: ProxyConfig, middlewares: tuple[str, ...]
    ) -> DirectRoute | None:
        """The direct route to `service`, or None when its requests need the general path."""
        from .service import HttpService

        if middlewares or not isinstance(service, HttpService) or not isinstance(client, UpstreamClient):
            return None
        if not service._direct or service.sticky is not None:
            return None
        if not service.backends:
            return None  # 503 from the general path
        for backend in service.backends:
            try:
                if parse_origin(backend.url)[0].scheme != "http":
                    return None
            except ValueError:
                return None
        return cls(service, client, config)


class CallbackCycle:
    """The callback side of one client connection (`HttpConnection`, which owns it)."""

    __slots__ = (
        "_collecting",
        "_conn",
        "_exchange",
        "_future",
        "_pending",
        "_pending_eof",
        "_protocol",
        "_queued",
        "_source",
        "_stream",
        "_transport",
    )

    def __init__(self, conn: HttpConnection, source: DirectSource) -> None:
        self._conn = conn
        self._source = source
        self._future: Any = None  # the future the connection's task waits on (an Outcome)
        self._queued: Any = _NOTHING
        self._exchange: CallbackExchange | None = None
        # Client bytes that arrived while a request was being served (pipelined, or the
        # client's EOF): read into the adapter once the response is out, as the general path
        # reads them only then.
        self._pending = b""
        self._pending_eof = False
        # Whether the callbacks are reading the body of the exchange's request: it is sent up
        # whole once it is here (at most INLINE_BODY_MAX bytes, which the general path inlines
        # too).
        self._collecting = False
        self._stream: AsyncioSocketStream | None = None
        self._protocol: Any = None
        self._transport: Any = None

    # ------------------------------------------------------------------ the connection's task

    async def next_head(self, stream: AsyncioSocketStream) -> RequestHead | None:
        """Serve requests by callbacks until one needs the general path (its head is returned)
        or the connection is over (None). Slow steps are run here, in the connection's task."""
        transport = await stream.attach()
        self._stream = stream
        self._protocol = stream.protocol
        self._transport = transport
        conn = self._conn
        try:
            while True:
                outcome = self._queued
                if outcome is _NOTHING:
                    future = self._future = stream.create_future()
                    self._listen()
                    outcome = await future if not future.done() else future.result()
                    self._future = None
                else:  # a slow step asked for another (a connect failed: the error's answer)
                    self._queued = _NOTHING
                if outcome is None or type(outcome) is RequestHead:
                    self._protocol.sink = None
                    self._give_back_pending()
                    return outcome
                await outcome()
                if conn.ended:
                    return None
        except BaseException as exc:
            self._future = None
            self._protocol.sink = None
            exchange = self._exchange
            if exchange is not None:
                exchange.abort(exc)
            raise

    def _give_back_pending(self) -> None:
        """Bytes that arrived meanwhile go back to the stream, where the general path reads."""
        protocol = self._protocol
        if self._pending:
            protocol.buffer = self._pending + protocol.buffer
            self._pending = b""
        if self._pending_eof:
            protocol.eof = True
            self._pending_eof = False

    def _listen(self) -> None:
        """Take the stream's bytes from now on, starting with what is already here."""
        protocol = self._protocol
        protocol.sink = self
        if self._exchange is not None:
            return  # a slow step of the exchange ran: it goes on by callbacks
        conn = self._conn
        if conn._events:
            self._on_events()
            if self._exchange is not None or self._future is None or self._future.done():
                return
        data = self._pending + protocol.buffer if self._pending else protocol.buffer
        self._pending = protocol.buffer = b""
        if protocol.paused_reading:
            protocol.paused_reading = False
            self._transport.resume_reading()
        eof = protocol.eof or self._pending_eof
        self._pending_eof = False
        if data:
            self.sink_data(data)
        if eof:
            self.sink_eof()
        elif not data and not conn._events and self._exchange is None:
            self._waiting()

    def _resolve(self, outcome: Outcome) -> None:
        future = self._future
        if future is not None and not future.done():
            future.set_result(outcome)
        else:  # the task is running a slow step: it takes this next
            self._queued = outcome

    def _fail(self, exc: BaseException) -> None:
        future = self._future
        if future is not None and not future.done():
            future.set_exception(exc)

    # ------------------------------------------------------------------ client bytes (the stream's sink)

    def _waiting(self) -> None:
        """No request in hand: the head clock (first request) or the idle clock runs."""
        conn = self._conn
        settings = conn._settings
        conn.read_deadline = time.monotonic() + (settings.idle if conn._served else settings.read_header)
        conn._head_started = False

    def sink_data(self, data: bytes) -> None:
        if self._collecting:
            self._body_data(data)
            return
        if self._exchange is not None or self._future is None or self._future.done():
            # Not listening: a request is being served here, or went to the task, which has not
            # run yet. What comes meanwhile is read after it (by the callbacks or the task), never
            # by the adapter now: a general request's body is the general path's to read.
            self._pending += data
            if len(self._pending) > 65536 and not self._protocol.paused_reading:
                self._protocol.paused_reading = True
                self._transport.pause_reading()
            return
        conn = self._conn
        try:
            if conn._sniff is not None:
                data = conn._first_bytes(data)
                if not data:
                    return
            events = conn._adapter.receive_data(data)
        except ProtocolError as exc:
            self._refuse(exc)
            return
        except Exception as exc:  # _SwitchToH2: the task switches protocols
            self._fail(exc)
            return
        if not events:
            if not conn._head_started:  # a head's first bytes: its clock starts
                conn._head_started = True
                conn.read_deadline = time.monotonic() + conn._settings.read_header
            return
        conn._events.extend(events)
        self._on_events()

    def sink_eof(self) -> None:
        if self._collecting:
            self._body_data(b"")
            return
        if self._exchange is not None or self._future is None or self._future.done():
            self._pending_eof = True
            return
        self._resolve_with_eof()

    def _resolve_with_eof(self) -> None:
        """The client closed its side between requests: what the general path's read sees."""
        conn = self._conn
        try:
            if conn._sniff is not None:
                data = conn._first_bytes(b"")
                events = conn._adapter.receive_data(data) if data else []
            else:
                events = []
            events += conn._adapter.receive_data(b"")
        except ProtocolError as exc:
            self._refuse(exc)
            return
        conn._events.extend(events)
        if events:
            self._on_events()
        else:
            self._resolve(None)

    def sink_lost(self, exc: BaseException | None) -> None:
        self._collecting = False
        exchange = self._exchange
        if exchange is not None:
            exchange.client_lost()
            return
        self._resolve(None)

    def sink_drained(self) -> None:
        """The client took what was buffered for it: the upstream may be read again."""
        self._conn.write_deadline = INF
        exchange = self._exchange
        if exchange is not None:
            exchange.resume()

    def _refuse(self, exc: ProtocolError) -> None:
        conn = self._conn

        async def refuse() -> None:
            if not conn._head_started:
                conn.read_deadline = time.monotonic() + conn._settings.read_header
            await conn._refuse(exc)
            conn.ended = True

        self._resolve(refuse)

    # ------------------------------------------------------------------ requests

    def _on_events(self) -> None:
        conn = self._conn
        events = conn._events
        while events:
            ev = events.pop(0)
            if type(ev) is RequestHead:
                conn.busy = True  # before anything else: drain never closes it now
                conn.read_deadline = INF
                self._request(ev)
                return
            if type(ev) is EndOfBody or type(ev) is Body or type(ev) is Trailers:
                continue
            self._resolve(None)  # ConnectionClosed or Reset: the client is done
            return
        self._waiting()

    def _request(self, head: RequestHead) -> None:
        """A request head: served here when its route is direct, else handed to the task."""
        conn = self._conn
        raw = head.headers
        names = list(map(_name_of, raw))
        if not _GENERAL_FIELDS.isdisjoint(names) and (
            b"upgrade" in names or raw[names.index(b"content-type")][1].startswith(_GRPC)
        ):
            self._resolve(head)
            return
        graph, entrypoint, access_log, traced = self._source()
        table = graph.tables.get(entrypoint)
        if traced or table is None:
            self._resolve(head)
            return
        settings = conn._settings
        request = build_request(head, NO_BODY, settings, conn.peer, peer_trusted=conn._trusted, sni=conn.sni)
        if head.has_body:
            # A body of known length that the general path would inline; not a chunked or
            # larger one (streamed up), nor one the client holds until `100 Continue`.
            length = request.content_length
            if length is None or length > INLINE_BODY_MAX or conn._adapter.waiting_for_100_continue:
                self._resolve(head)
                return
        try:
            match = table.route(request)
        except GatewayError:
            self._resolve(head)  # a refused target: the general path answers it
            return
        direct = None if match is None else match.direct
        if direct is None:
            self._resolve(head)
            return
        assert match is not None
        # From here the request is this path's.
        tracker = conn._tracker
        tracker.in_flight += 1
        tracker.requests += 1
        tracker.direct += 1
        conn._served = True
        now = time.monotonic()
        conn.probe_at = now + settings.probe_after
        request.route = match.info
        graph.active += 1
        meters = graph.meters
        exchange = self._exchange = CallbackExchange(
            self, graph, request, direct, names, access_log, meters, entrypoint, now
        )
        if head.has_body:
            exchange.body = []
            conn.body_deadline = now + settings.read_body
            self._collect()
        else:
            exchange.begin()

    def _body_data(self, data: bytes) -> None:
        """Bytes of the request body being collected (b"": the client's EOF)."""
        conn = self._conn
        try:
            events = conn._adapter.receive_data(data)
        except ProtocolError as exc:
            self._collecting = False
            exchange = self._exchange
            assert exchange is not None
            exchange.refuse_body(BadRequest(exc.message))
            return
        conn._events.extend(events)
        self._collect()

    def _collect(self) -> None:
        """Take the request body's events; the exchange begins once the body is whole."""
        conn = self._conn
        exchange = self._exchange
        assert exchange is not None and exchange.body is not None
        events = conn._events
        while events:
            ev = events.pop(0)
            kind = type(ev)
            if kind is Body:
                exchange.body.append(ev.data)  # type: ignore[union-attr]
            elif kind is EndOfBody:
                self._collecting = False
                conn.read_deadline = conn.body_deadline = INF
                exchange.begin()
                return
            elif kind is not Trailers:  # ConnectionClosed or Reset: the client went away
                self._collecting = False
                conn.read_deadline = conn.body_deadline = INF
                exchange.client_lost()
                return
        # Waiting for more of it: the idle clock, capped by the body's own deadline (read_body).
        self._collecting = True
        conn.read_deadline = min(time.monotonic() + conn._settings.idle, conn.body_deadline)

    def cycle_done(self, keep_alive: bool) -> None:
        """The exchange is over (its response written, or the connection cut)."""
        conn = self._conn
        self._exchange = None
        conn.probe_at = INF
        conn.busy = False
        conn._tracker.in_flight -= 1
        if not keep_alive or conn._tracker.draining:
            conn.ended = True
            self._resolve(None)
            return
        try:
            conn._events.extend(conn._adapter.start_next_cycle())
        except ProtocolError as exc:
            self._refuse(exc)
            return
        pending, self._pending = self._pending, b""
        if self._protocol.paused_reading:
            self._protocol.paused_reading = False
            self._transport.resume_reading()
        if conn._events:  # what the adapter still held: the end of the last body, a request
            self._on_events()
        if self._exchange is not None or self._future is None or self._future.done():
            # A request began (or went to the task): what came meanwhile waits its turn.
            self._pending = pending + self._pending
            return
        if pending:
            self.sink_data(pending)
        if (
            self._pending_eof
            and self._exchange is None
            and self._future is not None
            and not self._future.done()
        ):
            self._pending_eof = False
            self._resolve_with_eof()
        elif not pending and not conn._events and self._exchange is None:
            self._waiting()

    def write(self, data: bytes) -> None:
        """Write to the client; a client that does not keep up pauses the upstream."""
        transport = self._transport
        transport.write(data)
        if self._protocol.paused_writing:
            self._conn.write_deadline = time.monotonic() + self._conn._settings.idle
            exchange = self._exchange
            if exchange is not None:
                exchange.pause()

    def slow(self, step: SlowStep) -> None:
        self._resolve(step)


class CallbackExchange:
    """One request on the callback path: the backend's pick, the upstream exchange, the relay.

    It is the upstream stream's sink while it waits for the response, and the response's body
    for the observers (it takes their end callbacks and counts the bytes it relays)."""

    __slots__ = (
        "_backend",
        "_conn",
        "_cycle",
        "_done",
        "_expired",
        "_graph",
        "_head_sent",
        "_held",
        "_on_end",
        "_paused",
        "_pool",
        "_received",
        "_request",
        "_response",
        "_retried",
        "_start",
        "_taps",
        "_total",
        "_upstream_head",
        "_watch",
        "access_log",
        "body",
        "body_bytes",
        "deadline",
        "direct",
        "entrypoint",
        "meters",
        "names",
        "now",
        "tried",
        "wall",
    )

    def __init__(
        self,
        cycle: CallbackCycle,
        graph: LiveGraph,
        request: Request,
        direct: DirectRoute,
        names: list[bytes],
        access_log: AccessLog | None,
        meters: Any,
        entrypoint: str,
        now: float,
    ) -> None:
        self._cycle = cycle
        self._graph = graph
        self._request = request
        self.direct = direct
        self.names = names
        self.access_log = access_log
        self.meters = meters
        self.entrypoint = entrypoint
        self.now = now
        self.wall = time.time() if access_log is not None else 0.0
        self._backend: Backend | None = None
        self._conn: UpstreamConnection | None = None
        self._pool: ConnectionPool | None = None
        self._upstream_head: RequestHead | None = None
        self._response: Response | None = None
        self._on_end: list[EndCallback] | None = None
        self._taps: list[TappedBody] | None = None
        self._held: bool = False
        self._done = self._expired = self._head_sent = self._received = self._paused = False
        self._retried = False
        self._start = 0.0
        self._total: float | None = None
        self._watch = cycle._conn._watch
        self.body_bytes: int | None = None
        self.deadline = INF
        self.tried: set[str] | None = None
        # The request body's chunks, while the cycle collects them and until they are sent.
        self.body: list[bytes] | None = None

    # ------------------------------------------------------------------ pick and send

    def begin(self) -> None:
        request = self._request
        if self.meters is not None:  # the service series count the requests that reach it
            request.state[SERVICE_START] = time.monotonic()
        self._pick()

    def _pick(self) -> None:
        direct = self.direct
        service = direct.service
        health = service.health
        if health.evicted:
            health.refresh(service.clock.now())
        backends = service.backends
        tried = self.tried
        candidates: Sequence[Backend] = [b for b in backends if b.key not in tried] if tried else backends
        if health.busy:
            candidates = health.prefer_ready(candidates)
        backend = service.balancer.pick(candidates, self._request)
        if backend is None:
            self._error(NoHealthyBackend(f"service {service.name!r} has no available backend"))
            return
        self._backend = backend
        self._request.state["backend"] = backend
        backend.in_flight += 1
        self._start = service.clock.now()
        client = direct.client
        route = client._routes.get(backend.url) or client._route(backend.url)
        origin, base, pool = route
        self._pool = pool
        request = self._request
        target = request.target if not base or request.target == "*" else base + request.target
        raw = request.headers.raw
        headers = _headers_up(
            request, raw, self.names, origin.authority if direct.host else None, True, origin.authority
        )
        self._upstream_head = RequestHead(
            1, request.method.encode("ascii"), target.encode("latin-1"), headers.raw
        )
        timeouts = direct.timeouts
        self._total = None if timeouts.total is None else time.monotonic() + timeouts.total
        conn = pool.take_idle()
        if conn is None:
            self._cycle.slow(self._connect)
            return
        self._send_on(conn)

    async def _connect(self) -> None:
        """No idle connection: open one (in the connection's task), then carry on here."""
        assert self._pool is not None
        try:
            conn = await self._pool.acquire(self._remaining(self.direct.timeouts.connect))
            await conn.stream.attach()  # type: ignore[attr-defined]
        except Exception as exc:
            self._failed_before_head(exc)
            return
        self._send_on(conn)

    def _send_on(self, conn: UpstreamConnection) -> None:
        self._conn = conn
        self.direct.client.in_flight += 1
        assert self._upstream_head is not None
        adapter = conn.adapter
        try:
            data = adapter.send(self._upstream_head)
            if self.body:
                data += b"".join([adapter.send_body(chunk) for chunk in self.body if chunk])
            data += adapter.send(END_OF_BODY)
        except ProtocolError as exc:
            self._upstream_failed(GatewayError(f"cannot forward the request: {exc.message}"))
            return
        stream = conn.stream
        protocol = stream.protocol  # type: ignore[attr-defined]
        transport = stream.transport  # type: ignore[attr-defined]
        if transport is None or transport.is_closing() or protocol.eof:
            self._stale(clean=True)
            return
        protocol.sink = self
        timeout = self._remaining(self.direct.timeouts.response_header)
        self.deadline = time.monotonic() + timeout
        if self._watch is not None:
            self._watch.add(self)
        transport.write(data)

    def _remaining(self, timeout: float) -> float:
        if self._total is None:
            return timeout
        return max(0.0, min(timeout, self._total - time.monotonic()))

    # ------------------------------------------------------------------ upstream bytes (the sink)

    def sink_data(self, data: bytes) -> None:
        conn = self._conn
        if conn is None or self._done:
            return
        self._received = True
        try:
            events = conn.adapter.receive_data(data)
        except ProtocolError as exc:
            log.warning(
                "malformed response from %s: %s", self._pool.origin if self._pool else "?", exc.message
            )
            self._upstream_failed(BadGateway("upstream sent a malformed response"))
            return
        if events:
            self._relay(events)
        elif self._head_sent and not self._paused:
            self.deadline = time.monotonic() + self._remaining(self.direct.timeouts.idle)

    def sink_eof(self) -> None:
        self.sink_lost(None)

    def sink_lost(self, exc: BaseException | None) -> None:
        conn = self._conn
        if conn is None or self._done:
            return
        if self._expired:  # the deadline watch closed it
            if self._head_sent:
                self._cut(self._timeout_error())
            else:
                self._upstream_failed(self._timeout_error())
            return
        try:
            events = conn.adapter.receive_data(b"")
        except ProtocolError:
            events = []
        # The adapter's reading of the EOF: the end of a close-delimited body, or a close.
        self._relay(events or [_CLOSED])

    def sink_drained(self) -> None:
        """(The upstream transport's writes: the request went out; nothing waits on it.)"""

    def _relay(self, events: list[Event]) -> None:
        cycle = self._cycle
        out: list[bytes] = []
        adapter = cycle._conn._adapter
        for i, ev in enumerate(events):
            kind = type(ev)
            if kind is Body:
                data = ev.data  # type: ignore[union-attr]
                if self.body_bytes is not None:
                    self.body_bytes += len(data)
                if self._taps is not None:
                    for tap in self._taps:
                        tap._seen(data)
                out.append(adapter.send_body(data))
            elif kind is EndOfBody:
                try:
                    out.append(adapter.send(END_OF_BODY))
                except ProtocolError as exc:
                    self._flush(out)
                    self._cut(exc)
                    return
                self._flush(out)
                self._finished(leftover=i + 1 < len(events))
                return
            elif kind is ResponseHead:
                head = self._head(ev)  # type: ignore[arg-type]
                if head is None:
                    return  # an unsendable head: answered 500, connection closing
                out.append(head)
            elif kind is InformationalResponse or kind is Trailers:
                continue
            else:  # ConnectionClosed or Reset
                self._flush(out)
                if not self._head_sent:
                    if not self._received:
                        self._stale(clean=False)
                    else:
                        self._upstream_failed(
                            BadGateway("upstream closed the connection before completing the response head")
                        )
                else:
                    self._cut(BadGateway("upstream closed the connection mid-response"))
                return
        self._flush(out)
        if self._head_sent and not self._done and not self._paused:
            self.deadline = time.monotonic() + self._remaining(self.direct.timeouts.idle)

    def _flush(self, out: list[bytes]) -> None:
        if not out:
            return
        if len(out) == 1:
            self._cycle.write(out[0])
        elif sum(map(len, out)) <= _COALESCE_MAX:
            self._cycle.write(b"".join(out))
        else:
            for part in out:
                if part:
                    self._cycle.write(part)
        out.clear()

    def _head(self, ev: ResponseHead) -> bytes | None:
        """The response head arrived: the service hears of it, the observers see it, and the
        client's head is made (None when it cannot be: a 500 went out instead)."""
        backend = self._backend
        assert backend is not None
        service = self.direct.service
        service.head_arrived(backend, ev.status, self._start)
        headers = object.__new__(Headers)
        headers.raw = ev.headers
        response = Response(ev.status, headers, self)
        clean_response(response)
        self._response = response
        response = self._observe(response)
        cycle = self._cycle
        conn = cycle._conn
        adapter = conn._adapter
        raw = response.headers.raw
        if conn._tracker.draining:
            raw = [*raw, _CLOSE]
        self._head_sent = True
        try:
            return adapter.send(ResponseHead(1, response.status, raw))
        except ProtocolError as exc:
            from .connection import _UNSENDABLE

            log.error("unsendable response (status %s): %s", response.status, exc.message)
            cycle.write(_UNSENDABLE)
            self._end_upstream(discard=True)
            self._ended(None)
            cycle.cycle_done(False)
            return None

    def _observe(self, response: Response) -> Response:
        """The observers' view of the response (serve_observed's end, on this path)."""
        graph = self._graph
        access_log = self.access_log
        meters = self.meters
        if access_log is None and meters is None:
            return response
        now = time.monotonic()
        # The log's fields were the client's until now: nothing changed them on this path.
        sent = (
            list(self._request.headers.raw)
            if access_log is not None and access_log.headers is not None
            else None
        )
        held = graph if access_log is not None else None
        self._held = held is not None
        response = observe(
            self._request, response, self.entrypoint, self.now, now, meters, access_log,
            self.wall, sent, held,
        )  # fmt: skip
        body: Any = response.body
        if body is not self:
            taps: list[TappedBody] = []
            while isinstance(body, TappedBody):
                taps.append(body)
                body = body._body
            if body is not self:  # pragma: no cover - observe wraps in TappedBody only
                raise AssertionError(f"unexpected body wrapper {type(body).__name__}")
            self._taps = taps
        return response

    # ------------------------------------------------------------------ the body's end (observers)

    def add_end_callback(self, callback: EndCallback) -> None:
        if self._done and self._on_end is None:
            callback(None)
        elif self._on_end is None:
            self._on_end = [callback]
        else:
            self._on_end.append(callback)

    def __aiter__(self) -> CallbackExchange:  # (the BodyStream interface; never iterated)
        return self

    async def __anext__(self) -> bytes:  # pragma: no cover - the callbacks relay the body
        raise StopAsyncIteration

    async def aclose(self) -> None:  # pragma: no cover
        self.abort(None)

    # ------------------------------------------------------------------ endings

    def _finished(self, leftover: bool) -> None:
        """The response is relayed whole: park the upstream, count, and the next request."""
        cycle = self._cycle
        conn = self._conn
        assert conn is not None
        adapter = cycle._conn._adapter
        keep_alive = adapter.can_reuse
        self._end_upstream(discard=leftover or not conn.adapter.start_clean_cycle())
        self._ended(None)
        cycle.cycle_done(keep_alive)

    def _end_upstream(self, *, discard: bool) -> None:
        """Let go of the upstream connection: parked for reuse, or closed."""
        conn = self._conn
        if self._watch is not None:
            self._watch.discard(self)
        self.deadline = INF
        if conn is None:
            return
        self._conn = None
        conn.stream.protocol.sink = None  # type: ignore[attr-defined]
        if self._paused:
            self._paused = False
            transport = conn.stream.transport  # type: ignore[attr-defined]
            if transport is not None and not transport.is_closing():
                transport.resume_reading()
        self.direct.client.in_flight -= 1
        pool = self._pool
        assert pool is not None
        if discard or not pool.park(conn):
            pool.drop(conn)

    def _ended(self, error: BaseException | None) -> None:
        """The response's body is over: the backend, the observers, the generation."""
        if self._done:
            return
        self._done = True
        backend = self._backend
        if backend is not None and self._response is not None:
            self.direct.service._body_ended(backend, error)
        taps = self._taps
        if taps is not None:
            for tap in taps:
                tap._end()
        callbacks, self._on_end = self._on_end, None
        if callbacks is not None:
            for callback in callbacks:
                callback(error)
        if not self._held:
            self._graph.release()
        # The response holds this exchange as its body: drop the way back, so that the pair is
        # freed by reference counting, not left to the cycle collector.
        self._response = None
        self._taps = None

    def _cut(self, error: BaseException) -> None:
        """Mid-response failure: the head is out, so the client's connection is cut."""
        log.info("response aborted mid-stream: %s", error)
        self._end_upstream(discard=True)
        self._ended(error)
        cycle = self._cycle
        cycle._conn.ended = True
        cycle._transport.abort()
        cycle.cycle_done(False)

    def refuse_body(self, error: GatewayError) -> None:
        """The request body broke the protocol before anything was sent: its error answers,
        and the connection closes after it (its framing is lost)."""
        self._error(error)

    def client_lost(self) -> None:
        """The client's connection is gone mid-exchange."""
        error = ClientClosed("client connection lost")
        self._end_upstream(discard=True)
        if self._backend is not None and self._response is None:
            self.direct.service._failed(self._backend, error)
            self._backend = None
        self._ended(error)
        self._cycle._conn.ended = True
        self._cycle.cycle_done(False)

    def abort(self, error: BaseException | None) -> None:
        """The connection's task was cancelled (a deadline, drain's cut, shutdown)."""
        if self._done:
            return
        self._end_upstream(discard=True)
        if self._backend is not None and self._response is None:
            self.direct.service._failed(self._backend, error or GatewayTimeout("cancelled"))
            self._backend = None
        self._ended(error)
        self._cycle._exchange = None
        conn = self._cycle._conn
        conn._tracker.in_flight -= 1
        conn.busy = False
        conn.probe_at = INF

    def pause(self) -> None:
        conn = self._conn
        if conn is not None and not self._paused:
            transport = conn.stream.transport  # type: ignore[attr-defined]
            if transport is not None and not transport.is_closing():
                self._paused = True
                self.deadline = INF  # the client's write deadline runs instead
                transport.pause_reading()

    def resume(self) -> None:
        conn = self._conn
        if conn is not None and self._paused:
            self._paused = False
            transport = conn.stream.transport  # type: ignore[attr-defined]
            if transport is not None and not transport.is_closing():
                transport.resume_reading()
            if self._head_sent:
                self.deadline = time.monotonic() + self._remaining(self.direct.timeouts.idle)

    # ------------------------------------------------------------------ deadlines

    async def expire(self) -> None:
        """Called by the deadline watch: the response head, or a body chunk, is overdue."""
        self._expired = True
        conn = self._conn
        if conn is None:
            return
        if not self._head_sent:
            self._upstream_failed(self._timeout_error())
        else:
            self._cut(self._timeout_error())

    def _timeout_error(self) -> GatewayError:
        timeouts = self.direct.timeouts
        if self._head_sent:
            return GatewayTimeout(f"upstream sent nothing for {timeouts.idle:g}s mid-response")
        return GatewayTimeout(f"no response headers from upstream within {timeouts.response_header:g}s")

    # ------------------------------------------------------------------ failures before the head

    def _stale(self, *, clean: bool) -> None:
        """The connection died before any response byte: reused connections lose races with
        the server's keep-alive timer, so the request is tried once more (on the next parked
        connection, else a new one) when it provably did not reach the application: nothing
        was written, or it is idempotent and bodiless. As the general path's client does."""
        conn = self._conn
        reused = conn.reused if conn is not None else True
        self._end_upstream(discard=True)
        request = self._request
        safe = clean or (request.method in _IDEMPOTENT and request.content_length == 0)
        if reused and safe and not self._retried:
            self._retried = True
            self._received = False
            assert self._pool is not None
            conn = self._pool.take_idle()
            if conn is None:
                self._cycle.slow(self._connect)
            else:
                self._send_on(conn)
            return
        assert self._pool is not None
        self._failed_before_head(BadGateway(f"{self._pool.origin} closed the connection without responding"))

    def _upstream_failed(self, exc: BaseException) -> None:
        """The exchange failed before the response head, on a connection now closed."""
        self._end_upstream(discard=True)
        self._failed_before_head(exc)

    def _failed_before_head(self, exc: BaseException) -> None:
        backend = self._backend
        service = self.direct.service
        if backend is not None:
            self._backend = None
            service._failed(backend, exc)
            if isinstance(exc, CONNECT_FAILURES):
                tried = self.tried = {*(self.tried or ()), backend.key}
                if any(b.available and b.key not in tried for b in service.backends):
                    self._retried = False
                    self._received = False
                    self._pick()
                    return
        self._error(exc if isinstance(exc, Exception) else GatewayError())

    def _error(self, exc: Exception) -> None:
        """Answer the client with the error's response (in the connection's task: the general
        writer), as `serve_observed` and the connection would."""
        request = self._request
        graph = self._graph
        response = recover(request, exc)
        access_log, meters = self.access_log, self.meters
        if access_log is not None or meters is not None:
            now = time.monotonic()
            sent = (
                list(request.headers.raw)
                if access_log is not None and access_log.headers is not None
                else None
            )
            response = observe(
                request, response, self.entrypoint, self.now, now, meters, access_log,
                self.wall, sent, None,
            )  # fmt: skip
        self._done = True
        graph.release()
        cycle = self._cycle
        conn = cycle._conn

        async def respond() -> None:
            keep_alive = False
            try:
                cycle._protocol.sink = None
                keep_alive = await conn._respond(response)
            finally:
                cycle._exchange = None
                conn.probe_at = INF
                conn.busy = False
                conn._tracker.in_flight -= 1
            if not keep_alive or conn._tracker.draining:
                if not keep_alive and not conn._adapter.their_message_done and not conn.client_gone:
                    await conn._linger()  # answered before the whole body: as the general path
                conn.ended = True
                return
            try:
                conn._events.extend(conn._adapter.start_next_cycle())
            except ProtocolError as exc:
                await conn._refuse(exc)
                conn.ended = True

        cycle.slow(respond)
