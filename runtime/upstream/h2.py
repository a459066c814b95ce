"""HTTP/2 to upstream servers: one connection carries many exchanges, up to the server's limit.

`H2Pool` keeps the connections to one origin (`h2c://` with prior knowledge, or `https://` when
ALPN picked h2). A request takes a stream on the least busy connection that has one free;
a new connection is opened only when every connection is at the server's
SETTINGS_MAX_CONCURRENT_STREAMS, and one at a time, so a burst of requests shares the first
connection instead of racing to open many.

No connection has a task of its own (httpcore's design): whichever exchange needs an event
and finds none queued takes the connection's read lock, reads once from the socket, and
distributes what the adapter produced to every stream's queue. The lock is fair, so each
waiter in turn either finds its event already there or reads. Writes go through a write lock
that also carries the adapter's own output (acknowledgements, window updates), in order.
Timeouts are cancel scopes per wait: closing a shared socket (the HTTP/1.1 client's deadline
trick) would cut every stream on it.

The request body is pumped by a task so that the response can stream back at the same time
(gRPC bidirectional streaming). Its owner is the client stream's task group, published in
`PUMPS` by the HTTP/2 client connection; without one (an HTTP/1.1 client) the body is sent in
full before the response is returned, which is HTTP/1.1 semantics anyway.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import replace
from functools import partial

import anyio
import anyio.abc

from ...compiler.schema import ServiceTimeouts
from ..api import BodyStream, Headers, Request, Response
from ..errors import BadGateway, GatewayError, GatewayTimeout, ServiceUnavailable
from ..events import Body, ConnectionClosed, EndOfBody, Event, RequestHead, Reset, ResponseHead, Trailers
from ..protocols import ProtocolError
from ..protocols.http2 import H2ClientConnection, H2Settings

__all__ = ["PUMPS", "H2Pool", "H2Upstream"]

log = logging.getLogger("a3s_gateway.upstream.h2")

PUMPS: ContextVar[anyio.abc.TaskGroup | None] = ContextVar("a3s_h2_pumps", default=None)
_RECEIVE_SIZE = 65536
_CANCEL = 0x8
_REFUSED = 0x7
_READ_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class H2Upstream:
    """One HTTP/2 connection to an upstream server, shared by concurrent exchanges.

    Ordering rule: adapter output is only ever produced or fetched while holding the write
    lock, and written before the lock is released, so bytes reach the wire in the order the
    adapter made them (HPACK state depends on it).
    """

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        name: str,
        settings: H2Settings | None = None,
        *,
        write_timeout: float = 300.0,
    ) -> None:
        self.adapter = H2ClientConnection(settings)
        self.name = name
        self._stream = stream
        self._read_lock = anyio.Lock()
        self._write_lock = anyio.Lock()
        self._write_timeout = write_timeout
        self._queues: dict[int, deque[Event]] = {}
        self._broken: str | None = None  # why the connection is unusable
        self.idle_since = time.monotonic()
        # Streams promised to requests on their way to `open` (taken synchronously when the
        # pool picks this connection, so concurrent picks cannot overbook it).
        self.reserved = 0

    @property
    def active(self) -> int:
        return len(self._queues) + self.reserved

    @property
    def available(self) -> int:
        return 0 if self._broken is not None else self.adapter.available_streams - self.reserved

    @property
    def closed(self) -> bool:
        return self._broken is not None

    async def aclose(self) -> None:
        self._fail("closed")
        await anyio.aclose_forcefully(self._stream)

    # ------------------------------------------------------------------ writing

    async def write(self, produce: Callable[[], bytes] | None = None) -> None:
        """Run `produce` (an adapter call) under the write lock and write its output."""
        async with self._write_lock:
            if self._broken is not None:
                return
            data = produce() if produce is not None else b""
            data += self.adapter.data_to_send()
            if data:
                await self._send(data)

    async def _send(self, data: bytes) -> None:
        # Shielded: a frame cut in half by a cancelled waiter would corrupt every stream.
        with anyio.move_on_after(self._write_timeout, shield=True) as scope:
            try:
                await self._stream.send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                self._fail("connection lost while writing")
        if scope.cancelled_caught:
            self._fail("upstream stopped reading")
            await anyio.aclose_forcefully(self._stream)

    async def open(self, head: RequestHead, *, end_stream: bool) -> int:
        """Start a stream for `head` on a slot reserved by the pool (see `H2Pool._best`).

        Ids are taken and sent under one lock, so they reach the server in ascending order.
        """
        released = False
        try:
            async with self._write_lock:
                self.reserved -= 1
                released = True
                if self._broken is not None or not self.adapter.available_streams:
                    raise _Refused()
                sid = self.adapter.open_stream()
                self._queues[sid] = deque()
                data = self.adapter.send(replace(head, stream_id=sid), end_stream=end_stream)
                await self._send(data + self.adapter.data_to_send())
        finally:
            if not released:
                self.reserved -= 1
        if self._broken is not None:
            self._queues.pop(sid, None)
            raise _Refused()
        return sid

    # ------------------------------------------------------------------ reading

    async def wait_event(self, sid: int) -> Event:
        """The next event of stream `sid`, reading the socket when it is this waiter's turn."""
        queue = self._queues.get(sid)
        while queue is not None:
            if queue:
                return queue.popleft()
            await self._read_turn(lambda: bool(queue))
        return Reset(sid, _CANCEL)

    async def wait_writable(self, sid: int) -> bool:
        """Wait until `sid` has nothing pending; False when the stream ended meanwhile."""
        adapter, queue = self.adapter, self._queues.get(sid)

        def ended() -> bool:
            return queue is None or any(type(e) is Reset or type(e) is EndOfBody for e in queue)

        while not adapter.writable(sid):
            if ended():
                return False
            await self._read_turn(lambda: adapter.writable(sid) or ended())
        return not ended()

    async def _read_turn(self, satisfied: Callable[[], bool]) -> None:
        async with self._read_lock:
            if satisfied():
                return  # the previous reader brought what we wait for
            if self._broken is not None:
                return
            try:
                data = await self._stream.receive(_RECEIVE_SIZE)
            except _READ_ERRORS:
                data = b""
            try:
                events = self.adapter.receive_data(data, time.monotonic())
            except ProtocolError as exc:
                log.warning("HTTP/2 protocol error from %s: %s", self.name, exc.message)
                self._fail("upstream broke the HTTP/2 protocol")
                return
            for ev in events:
                self._route(ev)
            if not data:
                self._fail("upstream closed the connection")
                return
        await self.write()  # acknowledgements, window updates, released request data

    def _route(self, ev: Event) -> None:
        if type(ev) is ConnectionClosed:
            return  # GOAWAY: available drops to 0; streams above its id got Reset events
        queue = self._queues.get(ev.stream_id)  # type: ignore[union-attr]
        if queue is not None:
            queue.append(ev)

    def _fail(self, reason: str) -> None:
        if self._broken is None:
            self._broken = reason
            for sid, queue in self._queues.items():
                queue.append(Reset(sid, _CANCEL))

    def forget(self, sid: int) -> None:
        """The exchange on `sid` is over."""
        if self._queues.pop(sid, None) is not None and not self._queues:
            self.idle_since = time.monotonic()


class _Refused(Exception):
    """The connection could not take the stream (full, closed, or lost): try another one."""


class H2Pool:
    """The HTTP/2 connections to one origin."""

    def __init__(
        self,
        name: str,
        connect: Callable[[float], Awaitable[anyio.abc.ByteStream]],
        *,
        scheme: bytes = b"http",
        max_connections: int | None = None,
        keepalive_expiry: float = 60.0,
        settings: H2Settings | None = None,
    ) -> None:
        self.name = name
        self._connect = connect
        self._scheme = scheme
        self._conns: list[H2Upstream] = []
        self._connecting = anyio.Lock()
        self._max = max_connections
        self._expiry = keepalive_expiry
        self._settings = settings
        self.connects = 0

    def adopt(self, stream: anyio.abc.ByteStream) -> H2Upstream:
        """Take over a connection whose TLS handshake picked h2 (ALPN)."""
        conn = H2Upstream(stream, self.name, self._settings)
        self._conns.append(conn)
        self.connects += 1
        return conn

    async def _stream_slot(self, timeout: float) -> H2Upstream:
        """A connection with a free stream: an existing one, or a new one opened for it."""
        await self._prune()
        conn = self._best()
        if conn is not None:
            return conn
        async with self._connecting:  # one connect at a time: the others share its result
            conn = self._best()
            if conn is not None:
                return conn
            if self._max is not None and len(self._conns) >= self._max:
                raise ServiceUnavailable(f"{self.name}: upstream connection limit reached")
            stream = await self._connect(timeout)
            conn = self.adopt(stream)
            conn.reserved += 1
            await conn.write()  # our preface and SETTINGS
            return conn

    def _best(self) -> H2Upstream | None:
        """The least busy connection with a free stream, which is reserved for the caller."""
        usable = [c for c in self._conns if c.available > 0]
        if not usable:
            return None
        conn = min(usable, key=lambda c: c.active)
        conn.reserved += 1
        return conn

    async def _prune(self) -> None:
        stale_before = time.monotonic() - self._expiry
        keep: list[H2Upstream] = []
        for conn in self._conns:
            if conn.active == 0 and (conn.available == 0 or conn.idle_since < stale_before):
                await conn.aclose()
            else:
                keep.append(conn)
        self._conns = keep

    async def send(
        self, request: Request, head: RequestHead, timeouts: ServiceTimeouts, total: float | None
    ) -> Response:
        """Forward one request on a stream of a pooled connection; the response streams back."""
        has_body = request.content_length != 0
        head = replace(head, http_version=b"2", has_body=has_body, scheme=self._scheme)
        for attempt in (0, 1, 2):
            conn = await self._stream_slot(timeouts.connect)
            try:
                sid = await conn.open(head, end_stream=not has_body)
            except _Refused:
                if attempt == 2:
                    raise BadGateway(f"{self.name}: no HTTP/2 connection could take the request") from None
                continue
            exchange = _H2Exchange(conn, sid, timeouts, total)
            try:
                return await exchange.start(request if has_body else None)
            except _Retry:
                if attempt == 2:
                    raise BadGateway(f"{self.name} refused the stream") from None
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        conns, self._conns = self._conns, []
        for conn in conns:
            await conn.aclose()

    def statistics(self) -> tuple[int, int]:
        return len(self._conns), sum(c.active for c in self._conns)


class _Retry(Exception):
    """The server refused the stream before processing it (REFUSED_STREAM or GOAWAY): safe to retry."""


class _H2Exchange:
    """One stream; after `start` it is the response's body stream."""

    def __init__(self, conn: H2Upstream, sid: int, timeouts: ServiceTimeouts, total: float | None) -> None:
        self.conn = conn
        self.sid = sid
        self._timeouts = timeouts
        self._total = total
        self._response: Response | None = None
        self._done = False
        self._unacked = 0  # taken by ready() and not yet acknowledged
        self._pump_scope = anyio.CancelScope()
        self._pump_error: GatewayError | None = None

    async def start(self, request: Request | None) -> Response:
        try:
            if request is None:
                head = await self._head()
            elif (owner := PUMPS.get()) is not None:
                owner.start_soon(self._pump, request.body)
                head = await self._head()
            else:
                # No owner for a pump that outlives this call: half-duplex, as HTTP/1.1 is.
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._pump, request.body)
                    head = await self._head()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._end()
            raise
        headers = Headers()
        headers.raw = head.headers
        self._response = Response(head.status, headers, self)
        return self._response

    async def _head(self) -> ResponseHead:
        while True:
            ev = await self._within(self._timeouts.response_header)
            if type(ev) is ResponseHead:
                return ev
            if type(ev) is Reset:
                if self._pump_error is not None:
                    raise self._pump_error
                if ev.error_code == _REFUSED:
                    await self._end()
                    raise _Retry()
                raise BadGateway(f"{self.conn.name} reset the stream (error {ev.error_code})")
            if type(ev) is not ResponseHead and type(ev) is not Body:
                continue  # InformationalResponse: the client already got its own 100 Continue
            raise BadGateway(f"{self.conn.name} sent data before a response head")

    async def _pump(self, body: BodyStream) -> None:
        """Send the request body as the server's window allows; stops with the exchange."""
        conn, sid = self.conn, self.sid
        with self._pump_scope:
            try:
                async for chunk in body:
                    if chunk:
                        await conn.write(partial(conn.adapter.send, Body(sid, chunk)))
                        if not await conn.wait_writable(sid):
                            return  # the server answered and ended (or reset) the stream
                await conn.write(lambda: conn.adapter.send(EndOfBody(sid)))
            except GatewayError as exc:
                # The client's side failed (it went away): abort the upstream stream too.
                self._pump_error = exc
                await conn.write(lambda: conn.adapter.send(Reset(sid, _CANCEL)))
                queue = conn._queues.get(sid)
                if queue is not None:
                    queue.append(Reset(sid, _CANCEL))

    # ------------------------------------------------------------------ body stream

    def __aiter__(self) -> _H2Exchange:
        return self

    async def __anext__(self) -> bytes:
        conn, sid = self.conn, self.sid
        while not self._done:
            ev = await self._within(self._timeouts.idle)
            if type(ev) is Body:
                n, self._unacked = len(ev.data) + self._unacked, 0
                await conn.write(partial(conn.adapter.acknowledge, sid, n))
                return ev.data
            if type(ev) is Trailers:
                if self._response is not None:
                    self._response.trailers = Headers(ev.headers)
                continue
            if type(ev) is EndOfBody:
                await self._end()
                break
            if type(ev) is Reset:
                await self._end()
                raise BadGateway(f"{conn.name} reset the stream mid-response")
        raise StopAsyncIteration

    def ready(self) -> tuple[list[bytes], bool]:
        """Chunks already received, taken without waiting, and whether the body ends right
        after them (acknowledged with the next read: output is only made under the write lock)."""
        queue = self.conn._queues.get(self.sid)
        chunks: list[bytes] = []
        while queue and type(queue[0]) is Body:
            data = queue.popleft().data  # type: ignore[union-attr]
            self._unacked += len(data)
            chunks.append(data)
        return chunks, queue is not None and bool(queue) and type(queue[0]) is EndOfBody

    async def aclose(self) -> None:
        await self._end()

    async def _end(self) -> None:
        """The exchange is over: stop the pump, reset what is still open, free the stream."""
        if self._done:
            return
        self._done = True
        self._pump_scope.cancel()
        conn, sid = self.conn, self.sid
        with anyio.CancelScope(shield=True):
            if conn.adapter.is_open(sid):
                await conn.write(lambda: conn.adapter.send(Reset(sid, _CANCEL)))
            else:
                await conn.write()
        conn.forget(sid)

    async def _within(self, timeout: float) -> Event:
        if self._total is not None:
            timeout = max(0.0, min(timeout, self._total - time.monotonic()))
        with anyio.move_on_after(timeout):
            return await self.conn.wait_event(self.sid)
        await self._end()
        if self._response is None:
            raise GatewayTimeout(f"no response headers from {self.conn.name} within {timeout:g}s")
        raise GatewayTimeout(f"{self.conn.name} sent nothing for {timeout:g}s mid-response")
