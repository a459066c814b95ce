"""The upstream HTTP/1.1 client: one request/response exchange on a pooled connection.

`UpstreamClient.send` writes the request head, streams the request body, waits for the
response head and returns a `Response` whose body is the live socket: each chunk is handed on
as it is read, and the next read happens only when the caller asks for the next chunk, so a
slow client slows the upstream down instead of filling memory.

The request body goes up in one of two ways. A body of known length up to 64 KiB (the usual
JSON request to a model server) is sent inline, before reading the response: no task, and the
kernel's socket buffers absorb it even if the server answers before reading it. Anything else
(chunked, or larger) is pumped by a helper task while this task waits for the response head,
so a server that answers early (413, 401) is heard. Once the head is in, a pump that has not
finished is stopped and the connection is not reused: HTTP/1.1 proxying here is half-duplex
after the response starts, as in nginx and Traefik.

Timeouts (all from `ServiceTimeouts`; nothing else ever cuts an exchange):
* connect: in the pool (504 on expiry, 502 on refusal);
* response_header: from the last byte of request sent to the response head (504);
* idle: the longest wait for a byte of the response body; expiry aborts the stream;
* total: only when configured, a cap on everything after connecting.
Errors map to the taxonomy here: malformed response -> BadGateway, timeouts -> GatewayTimeout.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
import anyio.abc

from ...compiler.schema import ProxyConfig, ServiceTimeouts
from ..api import BodyStream, Headers, Request, Response, Upgraded, empty_body
from ..body_end import EndCallback, fire
from ..deadlines import CURRENT
from ..errors import BadGateway, GatewayError, GatewayTimeout
from ..events import (
    END_OF_BODY,
    Body,
    EndOfBody,
    Event,
    InformationalResponse,
    RequestHead,
    ResponseHead,
    Trailers,
)
from ..protocols import ProtocolError
from .h2 import H2Pool
from .pool import ConnectionPool, ConnectTiming, Origin, PoolStatistics, UpstreamConnection, parse_origin

__all__ = ["ClientStatistics", "UpstreamClient"]

log = logging.getLogger("a3s_gateway.upstream")

INLINE_BODY_MAX = 65536
_MAX_ROUTES = 4096
_RECEIVE_SIZE = 65536
# RFC 9110 §9.2.2: a request that may be repeated without changing the outcome.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_WRITE_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)
_RECEIVE_ERRORS = (anyio.EndOfStream, *_WRITE_ERRORS)
INF = float("inf")
_T = TypeVar("_T")


class _Stale(Exception):
    """The connection died before any response byte; `clean` = nothing of the request was sent."""

    def __init__(self, clean: bool) -> None:
        self.clean = clean


@dataclass(frozen=True, slots=True)
class ClientStatistics:
    in_flight: int
    pools: tuple[PoolStatistics, ...]


class UpstreamClient:
    """Keep-alive pools per origin and the exchanges that use them. Close with `aclose()`."""

    def __init__(
        self,
        config: ProxyConfig | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_expiry: float = 60.0,
    ) -> None:
        config = config or ProxyConfig()
        self._max_idle = config.max_idle_connections
        self._max_connections = config.max_connections
        self._ssl = ssl_context
        self._expiry = keepalive_expiry
        self._pools: dict[Origin, ConnectionPool] = {}
        self._routes: dict[str, tuple[Origin, str, ConnectionPool]] = {}
        # Origins that speak HTTP/2: h2c://, and https:// whose ALPN picked h2.
        self._h2: dict[Origin, H2Pool] = {}
        self.in_flight = 0
        # Shared by its pools: the metrics' connect-time histogram, when they are on.
        self.connect_timing = ConnectTiming()

    async def send(
        self,
        request: Request,
        origin_url: str,
        timeouts: ServiceTimeouts,
        *,
        headers: Headers,
        clean: Callable[[Response], None] | None = None,
    ) -> Response:
        """Forward `request` (with exactly `headers`) to the server at `origin_url`; `clean`
        is applied to the response before it is returned (the proxy's header hygiene, done
        here so that the proxy needs no coroutine of its own)."""
        route = self._routes.get(origin_url) or self._route(origin_url)
        origin, base, pool = route
        target = request.target if not base or request.target == "*" else base + request.target
        head = RequestHead(1, request.method.encode("ascii"), target.encode("latin-1"), headers.raw)
        total = None if timeouts.total is None else time.monotonic() + timeouts.total
        h2 = self._h2.get(origin) if self._h2 else None
        if h2 is None and origin.scheme == "h2c":
            h2 = self._new_h2(origin, pool)
        if h2 is not None:
            return _cleaned(await h2.send(request, head, timeouts, total), clean)
        for attempt in (0, 1):
            conn = pool.take_idle() or await pool.acquire(timeouts.connect)
            if conn.alpn == "h2":
                # The server chose HTTP/2: from now on this origin goes through the h2 pool.
                pool.detach(conn)
                h2 = self._h2.get(origin) or self._new_h2(origin, pool)
                h2.adopt(conn.stream)
                return _cleaned(await h2.send(request, head, timeouts, total), clean)
            exchange = _Exchange(self, pool, conn, timeouts, total)
            try:
                response = await exchange.start(head, request)
            except _Stale as stale:
                # Reused connections can lose a race with the server's keep-alive timer. Retry
                # once, on a fresh connection, when the request provably did not reach the
                # application: nothing was written, or it was idempotent and bodiless.
                safe = stale.clean or (request.method in _IDEMPOTENT and request.content_length == 0)
                if attempt or not conn.reused or not safe:
                    raise BadGateway(f"{origin} closed the connection without responding") from None
                continue
            if clean is not None:
                clean(response)
            return response
        raise AssertionError("unreachable")

    def _route(self, origin_url: str) -> tuple[Origin, str, ConnectionPool]:
        """Origin, base path and pool of a server URL, remembered by URL: one str-keyed
        lookup per request instead of parsing and hashing the origin."""
        origin, base = parse_origin(origin_url)
        route = (origin, base, self._pools.get(origin) or self._new_pool(origin))
        if len(self._routes) >= _MAX_ROUTES:  # replicas come and go: forget old URLs
            self._routes.clear()
        self._routes[origin_url] = route
        return route

    def _new_pool(self, origin: Origin) -> ConnectionPool:
        pool = ConnectionPool(
            origin,
            ssl_context=self._ssl,
            max_idle=self._max_idle,
            max_connections=self._max_connections,
            keepalive_expiry=self._expiry,
            timing=self.connect_timing,
        )
        self._pools[origin] = pool
        return pool

    def _new_h2(self, origin: Origin, pool: ConnectionPool) -> H2Pool:
        async def connect(timeout: float) -> anyio.abc.ByteStream:
            conn = await pool.connect(timeout)
            if origin.tls and conn.alpn != "h2":
                await conn.aclose()
                raise BadGateway(f"{origin} stopped offering HTTP/2")
            return conn.stream

        h2 = H2Pool(
            str(origin),
            connect,
            scheme=b"https" if origin.tls else b"http",
            max_connections=self._max_connections,
            keepalive_expiry=self._expiry,
        )
        self._h2[origin] = h2
        return h2

    async def aclose(self) -> None:
        self._routes = {}
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()
        h2_pools, self._h2 = list(self._h2.values()), {}
        for h2 in h2_pools:
            await h2.aclose()

    def statistics(self) -> ClientStatistics:
        return ClientStatistics(self.in_flight, tuple(p.statistics() for p in self._pools.values()))


class _Exchange:
    """One request/response on one connection; after `start` it is the response's body stream.

    Timeouts: with an ambient `DeadlineWatch` (inside a listener's connection) a wait publishes
    `deadline` and the watch closes the socket when it passes (`expire`); without one, each
    wait runs in a cancel scope. `_within` hides which.
    """

    __slots__ = (
        "_client",
        "_done",
        "_events",
        "_expired",
        "_idle",
        "_on_end",
        "_pool",
        "_response",
        "_scope",
        "_timeouts",
        "_total",
        "_watch",
        "body_bytes",
        "conn",
        "deadline",
    )

    def __init__(
        self,
        client: UpstreamClient,
        pool: ConnectionPool,
        conn: UpstreamConnection,
        timeouts: ServiceTimeouts,
        total_deadline: float | None,
    ) -> None:
        self._client = client
        self._pool = pool
        self.conn = conn
        self._timeouts = timeouts
        self._idle = timeouts.idle
        self._total = total_deadline
        self._events: list[Event | _Failed] = []  # tiny: a list beats a deque's 600 B
        self._done = self._expired = False
        self._response: Response | None = None
        self._on_end: list[EndCallback] | None = None  # see body_end.py
        # The response body bytes handed on so far, once someone asks for the count (body_end.py;
        # None: nobody did, and the body path pays one test).
        self.body_bytes: int | None = None
        self._scope: anyio.CancelScope | None = None
        self.deadline = INF
        self._watch = CURRENT.get()
        if self._watch is not None:
            self._watch.add(self)
        client.in_flight += 1

    # ------------------------------------------------------------------ request and response head

    async def start(self, head: RequestHead, request: Request) -> Response:
        try:
            timeout = self._timeouts.response_header
            if self._total is not None:
                timeout = self._remaining(timeout)
            if self._watch is not None:  # the common case, inside a listener: no cancel scope
                self.deadline = time.monotonic() + timeout
                response_head = await self._exchange_head(head, request)
                self.deadline = INF
            else:
                with anyio.move_on_after(timeout) as self._scope:
                    response_head = await self._exchange_head(head, request)
                if self._scope.cancelled_caught:
                    raise self._timeout_error()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._close()
            raise
        # The adapter's list as it is, without Headers.__init__ (its copy, and its frame).
        headers = object.__new__(Headers)
        headers.raw = response_head.headers
        if response_head.status == 101 and self.conn.adapter.switched:
            # The connection now speaks another protocol: hand it over, out of the pool.
            self._end()
            self._pool.detach(self.conn)
            upgraded = Upgraded(self.conn.stream, self.conn.adapter.trailing_data)
            return Response(101, headers, empty_body(), upgrade=upgraded)
        self._response = Response(response_head.status, headers, self)
        return self._response

    def _exchange_head(self, head: RequestHead, request: Request) -> Awaitable[ResponseHead]:
        """Send the request (its head, and its body the way the module docstring says) and
        receive the response head. A plain function returning the coroutine that does it: the
        bodiless request, the usual one, costs no coroutine frame of its own here."""
        adapter = self.conn.adapter
        length = request.content_length
        try:
            data = adapter.send(head)
            if length == 0:
                data += adapter.send(END_OF_BODY)
        except ProtocolError as exc:
            # The request cannot be serialised (e.g. a middleware set an invalid field): ours.
            raise GatewayError(f"cannot forward the request: {exc.message}") from None
        if length == 0:
            return self._read_head(data)
        if length is not None and length <= INLINE_BODY_MAX:
            return self._inline_body(data, request.body)
        return self._pumped(data, request.body)

    async def _write_head(self, data: bytes) -> None:
        try:
            await self.conn.stream.send(data)
        except _WRITE_ERRORS:
            raise self._unsent() from None

    def _unsent(self) -> Exception:
        """What a failed write of the request head means: the deadline cut it, or the
        connection was dead before it (stale, and nothing of the request reached it)."""
        return self._timeout_error() if self._expired else _Stale(clean=True)

    async def _inline_body(self, data: bytes, body: BodyStream) -> ResponseHead:
        await self._write_head(data)
        await self._send_body(body)
        return await self._read_head()

    async def _send_body(self, body: BodyStream) -> None:
        """Stream the request body up; stops quietly if the upstream stops reading."""
        adapter, stream = self.conn.adapter, self.conn.stream
        try:
            async for chunk in body:
                if chunk:
                    await stream.send(adapter.send_body(chunk))
                    # The response-header clock starts from the last byte sent.
                    self._extend(self._timeouts.response_header)
            await stream.send(adapter.send(END_OF_BODY))
        except (*_WRITE_ERRORS, ProtocolError):
            pass  # the server closed or answered early; its response (if any) says why

    async def _pumped(self, data: bytes, body: BodyStream) -> ResponseHead:
        await self._write_head(data)
        failure: BaseException | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._pump, body)
            try:
                response_head = await self._read_head()
            except Exception as exc:  # raised after the group, not wrapped in an ExceptionGroup
                failure = exc
            tg.cancel_scope.cancel()
        if failure is not None:
            raise failure
        return response_head

    async def _pump(self, body: BodyStream) -> None:
        try:
            await self._send_body(body)
        except GatewayError as exc:
            # The client's side of the body failed (it hung up, or sent a malformed chunk):
            # abort the upstream exchange, and report that error rather than the 502 it causes.
            self._events.append(_Failed(exc))
            await anyio.aclose_forcefully(self.conn.stream)

    async def _read_head(self, request_head: bytes = b"") -> ResponseHead:
        """The response head, after writing `request_head` (a bodiless request whole) if any."""
        if request_head:
            try:  # _write_head inlined: a coroutine less per request
                await self.conn.stream.send(request_head)
            except _WRITE_ERRORS:
                raise self._unsent() from None
        events = self._events
        received = False
        while True:
            while events:
                ev = events.pop(0)
                if type(ev) is ResponseHead:
                    return ev
                if type(ev) is InformationalResponse:
                    if ev.status == 101:  # the upgrade the request asked for
                        return ResponseHead(1, 101, ev.headers)
                    continue  # 100 Continue and friends: the client already got its own
                if isinstance(ev, _Failed):
                    raise ev.error
                if not received:
                    raise _Stale(clean=False)
                raise BadGateway("upstream closed the connection before completing the response head")
            try:  # _receive inlined: a coroutine less per request
                data = await self.conn.stream.receive(_RECEIVE_SIZE)
            except _RECEIVE_ERRORS:
                if self._expired:
                    raise self._timeout_error() from None
                data = b""  # the adapter turns EOF into ConnectionClosed or Reset
            received = received or bool(data)
            try:  # _feed inlined
                events.extend(self.conn.adapter.receive_data(data))
            except ProtocolError as exc:
                raise self._malformed(exc) from None

    # ------------------------------------------------------------------ response body (BodyStream)

    def __aiter__(self) -> _Exchange:
        return self

    def add_end_callback(self, callback: EndCallback) -> None:
        """Have `callback(error)` run once when the body is over (body_end.py): no wrapper."""
        if self._done and self._on_end is None:
            callback(None)
        elif self._on_end is None:
            self._on_end = [callback]
        else:
            self._on_end.append(callback)

    async def __anext__(self) -> bytes:
        events = self._events
        try:
            while True:
                while events:
                    ev = events.pop(0)
                    if type(ev) is Body:
                        data = ev.data
                        if self.body_bytes is not None:
                            self.body_bytes += len(data)
                        return data
                    if type(ev) is EndOfBody:
                        if not self._finish():
                            await self._pool.discard(self.conn)
                        raise StopAsyncIteration
                    if type(ev) is Trailers:
                        if self._response is not None:
                            self._response.trailers = Headers(ev.headers)
                        continue
                    error = BadGateway("upstream closed the connection mid-response")
                    await self._close(error)
                    raise error
                if self._done:
                    raise StopAsyncIteration
                try:
                    if self._watch is not None:
                        # _within and _receive inlined: this frame lives as long as the stream,
                        # and each extra coroutine frame is memory per open stream.
                        idle = self._idle if self._total is None else self._remaining(self._idle)
                        self.deadline = time.monotonic() + idle
                        try:
                            data = await self.conn.stream.receive(_RECEIVE_SIZE)
                        except _RECEIVE_ERRORS:
                            if self._expired:
                                raise self._timeout_error() from None
                            data = b""
                        self.deadline = INF
                    else:
                        data = await self._within(self._idle, self._receive())
                except GatewayError as exc:
                    await self._close(exc)
                    raise
                self._feed(data)
        except StopAsyncIteration:
            raise
        except BaseException as exc:  # a malformed chunk, or the reader cancelled: tell observers
            callbacks, self._on_end = self._on_end, None
            fire(callbacks, exc)
            raise

    def ready(self) -> tuple[list[bytes], bool]:
        """Body chunks already received, taken without waiting, and whether the body ends right
        after them. Lets the connection write the head and a small body in one send; the end
        itself is still consumed through `__anext__`, which parks the connection."""
        events, chunks = self._events, []
        while events and type(events[0]) is Body:
            chunks.append(events.pop(0).data)  # type: ignore[union-attr]
        if self.body_bytes is not None and chunks:
            self.body_bytes += sum(map(len, chunks))
        return chunks, bool(events) and type(events[0]) is EndOfBody

    async def aclose(self) -> None:
        """Abandon the response: the connection is closed, never reused half-read."""
        await self._close()

    # ------------------------------------------------------------------ timeouts

    async def _within(self, timeout: float, waiting: Awaitable[_T]) -> _T:
        """Await `waiting` with `timeout` (capped by the total deadline)."""
        timeout = self._remaining(timeout)
        if self._watch is not None:
            self.deadline = time.monotonic() + timeout
            try:
                return await waiting
            finally:
                self.deadline = INF
        with anyio.move_on_after(timeout) as self._scope:
            return await waiting
        self._expired = True
        raise self._timeout_error()

    def _extend(self, timeout: float) -> None:
        if self._watch is not None:
            self.deadline = time.monotonic() + self._remaining(timeout)
        elif self._scope is not None:
            self._scope.deadline = anyio.current_time() + self._remaining(timeout)

    async def expire(self) -> None:
        """Called by the deadline watch: unblock the waiter by closing the socket."""
        self._expired = True
        await anyio.aclose_forcefully(self.conn.stream)

    def _timeout_error(self) -> GatewayError:
        if self._response is not None:
            return GatewayTimeout(f"upstream sent nothing for {self._idle:g}s mid-response")
        if not self.conn.adapter.our_message_done:
            return GatewayTimeout("upstream stopped reading the request")
        return GatewayTimeout(f"no response headers from upstream within {self._timeouts.response_header:g}s")

    def _remaining(self, timeout: float) -> float:
        if self._total is None:
            return timeout
        return max(0.0, min(timeout, self._total - time.monotonic()))

    # ------------------------------------------------------------------ plumbing

    async def _receive(self) -> bytes:
        try:
            return await self.conn.stream.receive(_RECEIVE_SIZE)
        except _RECEIVE_ERRORS:
            if self._expired:
                raise self._timeout_error() from None
            return b""  # the adapter turns EOF into ConnectionClosed or Reset as the state demands

    def _feed(self, data: bytes) -> None:
        try:
            self._events.extend(self.conn.adapter.receive_data(data))
        except ProtocolError as exc:
            raise self._malformed(exc) from None

    def _malformed(self, exc: ProtocolError) -> BadGateway:
        # The details (upstream bytes) go to the log, not to the client.
        log.warning("malformed response from %s: %s", self._pool.origin, exc.message)
        return BadGateway("upstream sent a malformed response")

    def _end(self, error: BaseException | None = None) -> bool:
        """Mark the exchange over and tell whoever asked; False if it already was."""
        if self._done:
            return False
        self._done = True
        # The response holds this exchange as its body: drop the way back, so the pair is freed
        # by reference counting when the request is over, not left to the cycle collector.
        self._response = None
        self._client.in_flight -= 1
        if self._watch is not None:
            self._watch.discard(self)
        callbacks = self._on_end
        if callbacks is not None:  # fire() inlined: once per request
            self._on_end = None
            for callback in callbacks:
                callback(error)
        return True

    def _finish(self) -> bool:
        """The response ended cleanly: park the connection if both messages are complete and
        nothing follows them. False when it could not be parked (the caller then discards it);
        a plain call, since parking is the usual case and needs no waiting.

        Bytes the server sent past its response (a HEAD answered with the body its
        Content-Length announced, a second response, junk) belong to no request: kept, they
        would be read as the next client's response, so the connection is closed instead.
        """
        if not self._end():
            return True
        return not self._events and self.conn.adapter.start_clean_cycle() and self._pool.park(self.conn)

    async def _close(self, error: BaseException | None = None) -> None:
        if self._end(error):
            await self._pool.discard(self.conn)

    def __del__(self) -> None:
        # Last resort, as WatchedBody: a body dropped unread still ends for its observers.
        if self._on_end is not None:  # none left in the usual case: _end took them
            callbacks, self._on_end = self._on_end, None
            fire(callbacks, None)


def _cleaned(response: Response, clean: Callable[[Response], None] | None) -> Response:
    if clean is not None:
        clean(response)
    return response


class _Failed:
    """Queued by the body pump when the client's request body failed."""

    __slots__ = ("error",)

    def __init__(self, error: GatewayError) -> None:
        self.error = error
