"""One client connection: the socket loop around the HTTP/1.1 server adapter.

This module is the only reader and writer of a client socket. It turns bytes into events with
the adapter, builds an `api.Request` whose body pulls from the socket only when iterated (so a
backend that reads slowly slows the client's upload), awaits the pipeline, then writes the
response head and each body chunk as it arrives: one write per chunk on a TCP_NODELAY socket,
so an SSE event leaves when it arrives. Nothing ever waits to be coalesced; the only merging is
of bytes already in hand at the same instant (the head and a body the upstream sent with it go
out in one write). A client that reads slowly blocks that write, which stops the upstream read:
memory stays bounded by one read buffer per stream.

Timeouts cost nothing per request. Instead of a cancel scope around every read and write, the
connection publishes deadlines (`read_deadline`, `write_deadline`: monotonic seconds, `inf`
when not waiting) and the listener's ticker, one task per entrypoint, cancels connections
whose deadline passed. Waiting for the next request on a kept-alive connection uses the idle
timeout; once its first byte arrives, the head must be complete within read_header (a
slowloris client is cut); a blocked body read or response write gets the idle timeout. A request
body must have arrived read_body after its head: a body read past that deadline cancels the
request like any timeout, and the client then gets 408 (or, if the response head is already
out, a cut connection), so an upload trickled a byte at a time cannot hold the connection.

Client disconnects: while a request is being handled (waiting for the upstream or streaming its
answer) nobody reads the socket, so a hang-up would go unnoticed until the next write, which
for a model still thinking can be minutes of wasted GPU. Once a request has been running for
`probe_after` seconds, each tick polls its socket for the client's FIN without reading (no
task, no buffer, a pipelined request stays where it is); a hang-up cancels the request, which
closes the upstream response. Short requests never pay for it.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import ssl
import time
from collections.abc import Callable

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSAttribute, TLSStream

from .api import NO_BODY, BodyStream, Handler, Response
from .asyncio_stream import AsyncioSocketStream
from .callback_path import CallbackCycle, DirectSource
from .deadlines import CURRENT, DeadlineWatch
from .errors import (
    BadRequest,
    ClientClosed,
    GatewayError,
    HeadersTooLarge,
    RequestTimeout,
    Unimplemented,
    UriTooLong,
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
from .h2connection import H2Connection
from .ingress import ConnectionSettings, build_request, new_request_id
from .pipeline import recover
from .protocols import ProtocolError, render_response
from .protocols.clienthello import ClientHelloError
from .protocols.http1_choice import HTTP1
from .protocols.http2 import H2Settings
from .protocols.negotiate import choose_protocol
from .tls import server_name_of
from .tls_select import sni_contexts
from .websocket_proxy import WebSocketRelay

# ConnectionSettings and new_request_id live in ingress.py; re-exported for the HTTP/2 connection.
__all__ = ["ConnectionSettings", "ConnectionTracker", "HttpConnection", "new_request_id"]

log = logging.getLogger("a3s_gateway.connection")

INF = float("inf")
_RECEIVE_SIZE = 65536
# Lingering close after an early response: at most this much unread request body is drained.
_LINGER_SECONDS = 2.0
_LINGER_BYTES = 4 * 1024 * 1024
_CLOSE = (b"connection", b"close")
_COALESCE_MAX = 16384  # head + ready body up to this size go out in one send
# The one place where an HTTP/1.1 parse error's status becomes the error the client sees.
_PROTOCOL_ERRORS: dict[int, type[GatewayError]] = {414: UriTooLong, 431: HeadersTooLarge, 501: Unimplemented}
_POLLRDHUP: int | None = getattr(select, "POLLRDHUP", None)

_UNSENDABLE = render_response(
    ResponseHead(1, 500, [(b"content-type", b"application/json")]),
    b'{"error":{"type":"internal_error","message":"invalid response","status":500}}',
)


class ConnectionTracker:
    """Counters and the drain flag shared by one server's connections."""

    __slots__ = ("direct", "draining", "in_flight", "requests")

    def __init__(self) -> None:
        self.draining = False
        self.in_flight = 0
        self.requests = 0
        self.direct = 0  # of `requests`, those the callback path served (callback_path.py)


class _RequestBody:
    """The request body as a BodyStream: each `__anext__` reads the socket only if needed."""

    __slots__ = ("_conn", "_done")

    def __init__(self, conn: HttpConnection) -> None:
        self._conn = conn
        self._done = False

    def __aiter__(self) -> _RequestBody:
        return self

    async def __anext__(self) -> bytes:
        if not self._done:
            data = await self._conn._body_chunk()
            if data is not None:
                return data
            self._done = True
        raise StopAsyncIteration

    async def aclose(self) -> None:
        # What is left unread stays unread; the connection closes instead of being reused.
        self._done = True


class HttpConnection:
    """Serves HTTP/1.1 requests on one accepted stream until either side closes it."""

    __slots__ = (
        "_adapter",
        "_callbacks",
        "_dispatch",
        "_events",
        "_h2",
        "_head_started",
        "_on_close",
        "_poll",
        "_served",
        "_settings",
        "_sni_contexts",
        "_sniff",
        "_ssl",
        "_stream",
        "_tracker",
        "_trusted",
        "_watch",
        "body_deadline",
        "body_late",
        "busy",
        "client_gone",
        "ended",
        "peer",
        "probe_at",
        "read_deadline",
        "scope",
        "sni",
        "timed_out",
        "write_deadline",
    )

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        dispatch: Handler,
        settings: ConnectionSettings,
        tracker: ConnectionTracker,
        *,
        peer: tuple[str, int],
        ssl_context: ssl.SSLContext | None = None,
        watch: DeadlineWatch | None = None,
        on_close: Callable[[HttpConnection], None] | None = None,
        direct: DirectSource | None = None,
    ) -> None:
        self._stream = stream
        self._dispatch = dispatch
        self._settings = settings
        self._tracker = tracker
        self._adapter = HTTP1.server(
            max_request_line=settings.max_request_line,
            max_header_bytes=settings.max_header_bytes,
            max_header_count=settings.max_header_count,
            underscore_headers=settings.underscore_headers,
        )
        self._events: list[Event] = []  # tiny (a head, a body, an end): a list beats a deque's 600 B
        self._trusted = bool(settings.trusted) and settings.trusted.trusts(peer[0])
        self._served = False  # whether a request came before (the next one waits with `idle`)
        self._poll: select.poll | None = None
        self.peer = peer
        self.sni: str | None = None
        self._ssl = ssl_context
        self._sni_contexts = sni_contexts(ssl_context) if ssl_context is not None else None
        self._watch = watch
        self._on_close = on_close
        # The first bytes, until they tell HTTP/1.1 from h2c; None: no sniffing (h2c = "off",
        # or "prior-knowledge", which is HTTP/2 from the first byte).
        self._sniff: bytes | None = b"" if settings.h2c == "auto" else None
        self._h2: H2Connection | None = None  # set when the connection turned out to be HTTP/2
        self.scope = anyio.CancelScope()
        self.busy = False
        self.client_gone = self.timed_out = self.body_late = False
        self.read_deadline = self.write_deadline = self.probe_at = INF
        # When the request body being received must be complete (read_body after its head).
        self.body_deadline = INF
        # The callback path (callback_path.py) serves the usual requests of a plain connection
        # on asyncio and uvloop, whose loop-native stream it needs; None: every request is
        # served here. `ended` and `_head_started` are its marks: the connection is over, a
        # head's first bytes came.
        self._callbacks: CallbackCycle | None = None
        if (
            direct is not None
            and ssl_context is None
            and settings.h2c != "prior-knowledge"
            and isinstance(stream, AsyncioSocketStream)
        ):
            self._callbacks = CallbackCycle(self, direct)
        self.ended = False
        self._head_started = False

    async def run(self) -> None:
        """The connection's task: TLS handshake if any, then requests until either side closes."""
        if self._watch is not None:
            CURRENT.set(self._watch)  # the upstream waits of this connection's requests
        try:
            with self.scope:
                if self._ssl is None or await self._handshake():
                    try:
                        if self._alpn() == "h2":
                            await self._serve_h2(b"")
                        elif self._prior_knowledge():
                            await self._serve_prior_knowledge()
                        else:
                            await self._serve()
                    except _SwitchToH2 as switch:
                        await self._serve_h2(switch.data)
                    except _Switched:
                        pass  # a WebSocket relay ran to its end
            if self.body_late and not self._adapter.response_started:
                await self._refuse_late_body()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # the client went away; nothing to answer
        except Exception:
            # A bug below the pipeline (e.g. in a body wrapper) must cost one connection, not
            # the listener's task group.
            log.exception("connection from %s failed", self.peer[0])
        finally:
            self.busy = False
            await anyio.aclose_forcefully(self._stream)
            if self._on_close is not None:
                self._on_close(self)

    async def _handshake(self) -> bool:
        # Bounded like a request head: a client that never finishes the handshake is cut.
        self.read_deadline = time.monotonic() + self._settings.read_header
        assert self._ssl is not None
        context, stream = self._ssl, self._stream
        try:
            by_sni = self._sni_contexts
            if by_sni is not None:  # per-host TLS options: read the ClientHello first
                context, stream = await by_sni.peek(stream)
            tls = await TLSStream.wrap(
                stream, server_side=True, ssl_context=context, standard_compatible=False
            )
        except (ssl.SSLError, anyio.EndOfStream, ClientHelloError) as exc:
            log.debug("TLS handshake with %s failed: %s", self.peer[0], exc)
            return False
        finally:
            self.read_deadline = INF
        self._stream = tls
        self.sni = server_name_of(tls.extra(TLSAttribute.ssl_object))
        return True

    def _alpn(self) -> str | None:
        if self._ssl is None:
            return None
        alpn = self._stream.extra(TLSAttribute.alpn_protocol, None)
        if alpn is not None:
            self._sniff = None  # ALPN decided; no preface sniffing
        return alpn

    def _prior_knowledge(self) -> bool:
        """A plain HTTP/2-only entrypoint (h2c = "prior-knowledge"): the connection is HTTP/2
        from its first byte, so anything but the preface, an HTTP/1.1 request included, is a
        connection error PROTOCOL_ERROR, answered with GOAWAY and a close (RFC 9113 §3.4)."""
        return self._ssl is None and self._settings.h2c == "prior-knowledge"

    async def _serve_prior_knowledge(self) -> None:
        """HTTP/2 with no sniffing. The first read is bounded by `read_header`, as a first
        request is on the other modes (a client that opens and never speaks is cut, not held
        for the idle timeout); what it read goes to the HTTP/2 connection, which judges it."""
        self.read_deadline = time.monotonic() + self._settings.read_header
        try:
            first = await self._stream.receive(_RECEIVE_SIZE)
        except anyio.EndOfStream:
            return
        finally:
            self.read_deadline = INF
        await self._serve_h2(first)

    async def _serve_h2(self, initial: bytes) -> None:
        """The connection speaks HTTP/2 (ALPN, or the h2c preface): hand it, with the bytes
        already read, to the HTTP/2 connection (STYLE.md practice 4), which runs inside this
        connection's scope and is what the ticker and drain now talk to."""
        settings = self._settings
        self._h2 = H2Connection(
            self._stream,
            self._dispatch,
            settings,
            self._tracker,
            peer=self.peer,
            sni=self.sni,
            initial=initial,
            # RFC 8441: WebSocket over HTTP/2 streams (extended CONNECT) is offered.
            h2_settings=H2Settings(
                max_concurrent_streams=settings.http2_max_streams,
                enable_connect_protocol=True,
                underscore_headers=settings.underscore_headers,
            ),
            watch=self._watch,
        )
        self.busy = True
        await self._h2.run()

    # ------------------------------------------------------------------ deadlines (called by the ticker)

    def check(self, now: float) -> None:
        """Cut the connection if a deadline passed, or if the client hung up on a long request."""
        if self._h2 is not None:
            self._h2.check(now)
            return
        if now >= self.read_deadline or now >= self.write_deadline:
            self.timed_out = True
            self.body_late = now >= self.body_deadline
            self.scope.cancel()
        elif now >= self.probe_at and self._hung_up():
            self.client_gone = True
            self.scope.cancel()

    def _hung_up(self) -> bool:
        """Whether the client closed its side, seen without reading (so nothing is consumed:
        a pipelined request stays in the socket). Linux reports the FIN as POLLRDHUP even
        behind unread bytes, TLS records included; elsewhere a peek sees EOF on plain TCP."""
        if self._poll is None:
            sock = self._stream.extra(SocketAttribute.raw_socket, None)
            if sock is None:
                self.probe_at = INF
                return False
            if _POLLRDHUP is None:
                try:
                    return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
                except OSError:
                    return False
            self._poll = select.poll()
            self._poll.register(sock.fileno(), _POLLRDHUP | select.POLLHUP | select.POLLERR)
        return bool(self._poll.poll(0))

    def close_if_idle(self) -> bool:
        """Close a connection waiting for its next request (drain). Returns whether it did."""
        if self._h2 is not None:
            return self._h2.close_if_idle()
        if not self.busy:
            self.scope.cancel()
        return not self.busy

    # ------------------------------------------------------------------ the request loop

    async def _serve(self) -> None:
        tracker = self._tracker
        callbacks = self._callbacks
        while True:
            if callbacks is None:
                head = await self._read_head()
            else:  # the callbacks serve what they can, and hand over the rest
                head = await callbacks.next_head(self._stream)  # type: ignore[arg-type]
            if head is None:
                return
            # One request. Inlined rather than a helper coroutine: this frame stays on the
            # stack for the whole life of a stream, and every frame is memory per stream.
            tracker.in_flight += 1
            tracker.requests += 1
            self._served = True
            now = time.monotonic()
            settings = self._settings
            self.probe_at = now + settings.probe_after
            if head.has_body:
                self.body_deadline = now + settings.read_body
                body: BodyStream = _RequestBody(self)
            else:
                body = NO_BODY
            try:
                # _request inlined: a frame less per request.
                request = build_request(
                    head, body, settings, self.peer, peer_trusted=self._trusted, sni=self.sni
                )
                del body
                try:  # pipeline.run_dispatch inlined: a coroutine less per request
                    response = await self._dispatch(request)
                except Exception as exc:
                    response = recover(request, exc)
                del request
                keep_alive = await self._respond(response)
            finally:
                self.probe_at = INF
                self.busy = False
                tracker.in_flight -= 1
            del head, response  # do not hold them while waiting for the next request
            self.body_deadline = INF
            if not keep_alive:
                if not self._adapter.their_message_done and not self.client_gone:
                    await self._linger()
                return
            if tracker.draining:
                return
            try:
                self._events.extend(self._adapter.start_next_cycle())
            except ProtocolError as exc:
                await self._refuse(exc)
                return

    async def _read_head(self) -> RequestHead | None:
        settings, events = self._settings, self._events
        # The first request's head is bounded by read_header from the start; a kept-alive
        # connection waits `idle` for the next one, whose head clock starts with its first bytes.
        started = not self._served
        self.read_deadline = time.monotonic() + (settings.idle if self._served else settings.read_header)
        received = False
        try:
            while True:
                if events:
                    ev = events.pop(0)
                    if type(ev) is RequestHead:
                        self.busy = True  # before any await, so drain never closes it now
                        return ev
                    if type(ev) is EndOfBody or type(ev) is Body or type(ev) is Trailers:
                        continue  # the rest of a body the handler did not read (fully received)
                    return None  # ConnectionClosed or Reset: the client is done
                if received and not started:
                    # A request's first bytes came on a kept-alive connection and did not complete
                    # its head: the head clock starts. (Set only now, before waiting again: a head
                    # that came whole, the usual case, costs no clock reading.)
                    started = True
                    self.read_deadline = time.monotonic() + settings.read_header
                try:  # _receive inlined: a coroutine less per request
                    data = await self._stream.receive(_RECEIVE_SIZE)
                except anyio.EndOfStream:
                    data = b""
                if self._sniff is not None:
                    data = self._first_bytes(data)
                    if not data:
                        continue  # a prefix of the h2c preface: read on
                received = True
                try:
                    events.extend(self._adapter.receive_data(data))
                except ProtocolError as exc:
                    if not started:  # the 4xx goes out under the head clock, as a head's bytes do
                        self.read_deadline = time.monotonic() + settings.read_header
                    await self._refuse(exc)
                    return None
        finally:
            self.read_deadline = INF

    def _first_bytes(self, data: bytes) -> bytes:
        """The connection's first bytes: HTTP/1.1 goes on (returned), the HTTP/2 preface
        switches protocols (raised), a prefix of it is kept until more arrives (b"")."""
        sniff = self._sniff
        assert sniff is not None
        if not data:
            self._sniff = None
            return sniff  # EOF: whatever came is HTTP/1.1's to judge
        data = sniff + data
        protocol = choose_protocol(None, data)
        if protocol is None:
            self._sniff = data
            return b""
        self._sniff = None
        if protocol == "h2":
            raise _SwitchToH2(data)
        return data

    async def _respond(self, response: Response) -> bool:
        if response.upgrade is not None:
            await self._switch(response)
            raise _Switched()
        adapter, body = self._adapter, response.body
        headers = response.headers.raw
        if self._tracker.draining or not adapter.their_message_done:
            # Draining, or answering before the request body was read: this connection closes
            # after the response, so tell the client not to send another request on it.
            headers = [*headers, _CLOSE]
        try:
            data = adapter.send(ResponseHead(1, response.status, headers))
        except ProtocolError as exc:
            # Nothing is sent yet: the client can still get a clean 500 instead of a cut.
            log.error("unsendable response (status %s): %s", response.status, exc.message)
            await _close_body(response)
            await self._write(_UNSENDABLE)
            return False
        try:
            writes, ended = self._with_ready_body(data, body)
            # _write inlined here and per chunk below (every SSE event): no coroutine per write.
            stream, idle = self._stream, self._settings.idle
            for data in writes:
                self.write_deadline = time.monotonic() + idle
                await stream.send(data)
            self.write_deadline = INF
            del writes, data  # this frame lives as long as the stream: do not pin the first chunk
            async for chunk in body:
                if chunk:
                    self.write_deadline = time.monotonic() + idle
                    await stream.send(adapter.send_body(chunk))
                    self.write_deadline = INF
            if not ended:
                tail = adapter.send(END_OF_BODY)
                if tail:
                    await self._write(tail)
        except (GatewayError, ProtocolError) as exc:
            # The head is out, so the status cannot change: cut the connection and the client
            # sees a truncated message (an incomplete chunked body or a short Content-Length).
            log.info("response aborted mid-stream: %s", exc)
            await _close_body(response)
            return False
        except BaseException:
            await _close_body(response)
            raise
        return adapter.can_reuse

    def _with_ready_body(self, head: bytes, body: object) -> tuple[list[bytes], bool]:
        """The head plus the body bytes that are already here, as the writes to make, and
        whether they include the end of the body. Small pieces are merged into one send (no
        waiting for anything: an SSE head still leaves before its first event); large ones go
        separately, since copying them would cost more than the send it saves."""
        ready = getattr(body, "ready", None)
        if ready is None:
            return [head], False
        chunks, ended = ready()
        parts = [head]
        adapter = self._adapter
        for chunk in chunks:  # a loop, not a comprehension: no frame of its own (Python 3.11)
            parts.append(adapter.send_body(chunk))
        if ended:
            parts.append(adapter.send(END_OF_BODY))
        if sum(map(len, parts)) <= _COALESCE_MAX:
            return [b"".join(parts)], ended
        return [part for part in parts if part], ended

    async def _switch(self, response: Response) -> None:
        """The backend accepted a protocol switch (WebSocket): relay frames until both close."""
        upgraded = response.upgrade
        assert upgraded is not None
        adapter = self._adapter
        try:
            try:
                await self._write(adapter.send(InformationalResponse(1, 101, response.headers.raw)))
            except ProtocolError:
                pass
            if not adapter.switched:  # the client never asked for it: nothing to relay
                await upgraded.aclose()
                return
            self.probe_at = INF  # the relay reads the socket itself
            settings = self._settings
            relay = WebSocketRelay(
                self._stream,
                upgraded.stream,
                idle=settings.websocket_idle,
                max_message_size=settings.websocket_message,
            )
            await relay.run(adapter.trailing_data, upgraded.leftover)
        finally:
            await _close_body(response)  # the (empty) body: the graph counts the exchange until then

    async def _write(self, data: bytes) -> None:
        self.write_deadline = time.monotonic() + self._settings.idle
        await self._stream.send(data)
        self.write_deadline = INF

    async def _receive(self) -> bytes:
        try:
            return await self._stream.receive(_RECEIVE_SIZE)
        except anyio.EndOfStream:
            return b""

    async def _body_chunk(self) -> bytes | None:
        """The next chunk of the request body, None at its end (called via _RequestBody)."""
        events = self._events
        while True:
            if events:
                ev = events.pop(0)
                if type(ev) is Body:
                    return ev.data
                if type(ev) is EndOfBody:
                    return None
                if type(ev) is Trailers:
                    continue  # HTTP/1.1 request trailers are not forwarded
                raise ClientClosed("client closed the connection mid-request")
            await self._fill_body()

    async def _fill_body(self) -> None:
        adapter = self._adapter
        if adapter.waiting_for_100_continue:
            # RFC 9110 §10.1.1: the client waits for our go-ahead; reading the body is it.
            await self._write(adapter.send(InformationalResponse(1, 100, [])))
        self.read_deadline = min(time.monotonic() + self._settings.idle, self.body_deadline)
        try:
            data = await self._receive()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            raise ClientClosed("client connection lost mid-request") from None
        finally:
            self.read_deadline = INF
        try:
            self._events.extend(adapter.receive_data(data))
        except ProtocolError as exc:
            raise BadRequest(exc.message) from None

    async def _linger(self) -> None:
        """Answered before reading the whole request body: half-close, then read and discard what
        the client is still sending (bounded in bytes and time) before closing, so it sees our
        response rather than a reset (RFC 9112 §9.6)."""
        try:
            await self._stream.send_eof()
        except (NotImplementedError, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # TLS has no half-close
        self.read_deadline = time.monotonic() + min(_LINGER_SECONDS, self._settings.idle)
        budget = _LINGER_BYTES
        try:
            while budget > 0:
                data = await self._receive()
                if not data:
                    return
                budget -= len(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            self.read_deadline = INF

    async def _refuse(self, exc: ProtocolError) -> None:
        """Answer a malformed request head with its 4xx and close (the framing is lost)."""
        await self._answer(_PROTOCOL_ERRORS.get(exc.status, BadRequest)(exc.message))

    async def _refuse_late_body(self) -> None:
        """The request body missed its read_body deadline and the request was cancelled before
        its response started: answer 408 and close, lingering so the client reads it."""
        self.scope = anyio.CancelScope()  # the ticker's handle for the deadlines below
        with self.scope:
            await self._answer(RequestTimeout("request body not received within read_body"))
            await self._linger()

    async def _answer(self, error: GatewayError) -> None:
        """Write `error` as a complete response that closes the connection."""
        payload = {"error": {"type": error.reason, "message": error.message, "status": error.status}}
        payload["error"]["request_id"] = new_request_id()
        body = json.dumps(payload, separators=(",", ":")).encode()
        head = ResponseHead(1, error.status, [(b"content-type", b"application/json")])
        log.debug("refused request from %s: %s", self.peer[0], error.message)
        try:
            await self._write(render_response(head, body))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass


class _SwitchToH2(Exception):
    """The client sent the HTTP/2 connection preface: `data` is everything read so far."""

    def __init__(self, data: bytes) -> None:
        self.data = data


class _Switched(Exception):
    """The connection switched protocols (WebSocket) and the relay has ended."""


async def _close_body(response: Response) -> None:
    with anyio.CancelScope(shield=True):
        try:
            await response.aclose()
        except Exception:
            log.debug("error while closing an abandoned response body", exc_info=True)
