"""One HTTP/2 client connection: the socket loop around the HTTP/2 server adapter.

This module is the only reader and writer of an h2 client socket (STYLE.md practice 2). Three
kinds of task share it, all owned by the connection's task group:

* the reader: reads bytes, feeds the adapter, routes events to their stream and starts a
  stream task for each new request. It never waits on anything but the socket, so a slow
  stream cannot stop control frames (PING, SETTINGS, WINDOW_UPDATE) from being answered;
* the writer: the only task that writes. Every adapter call's output is appended, in the
  order it was produced, to one buffer that the writer drains (HEADERS frames depend on
  HPACK state, so output may never be reordered). Streams wait when the buffer is above
  `_HIGH_WATER`: a client that reads slowly stops the streams, which stop their upstreams;
* one task per stream: builds the `api.Request`, runs the same dispatch path as an HTTP/1.1
  request (router, middlewares, service, proxy), and writes the response as it arrives.

Flow control is end to end. A request body chunk is acknowledged (opening the client's window)
only when the upstream side takes it; a response chunk is handed to the adapter only when the
previous one fitted in the client's window. A stream the client resets has its task cancelled,
which closes its upstream exchange (the rapid-reset defence in the adapter makes sure a
HEADERS+RST_STREAM pair never starts one, budgets resets, and counts a reset stream against
the stream limit until its task has finished: `handler_done`).

Timeouts follow `connection.py`: deadlines published for the listener's ticker. A connection
with no stream open gets the idle timeout; a blocked write gets it too, and so does a stream
whose response finds no room in the client's flow-control window (it is reset, and its
upstream exchange closed, when no byte of it could go out for that long). A stream whose request
body has not ended read_body after its head is cancelled by the ticker too: it is answered 408
if its response had not started, and reset (CANCEL) if it had. These two per-stream deadlines
are items of the listener's `DeadlineWatch` (`deadlines.py`, as the upstream waits are), which
the same ticker checks. Drain sends GOAWAY with the last accepted stream id and closes once
the accepted streams are done.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from collections import deque
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from .api import NO_BODY, Handler, Request, Response
from .deadlines import DeadlineWatch
from .errors import BadRequest, ClientClosed, GatewayError, RequestTimeout
from .events import (
    Body,
    ConnectionClosed,
    EndOfBody,
    Event,
    RequestHead,
    Reset,
    ResponseHead,
    Trailers,
)
from .grpc import status_fields
from .ingress import ConnectionSettings, build_request
from .pipeline import error_response, run_dispatch
from .protocols.http2 import H2ProtocolError, H2ServerConnection, H2Settings, H2StreamError
from .protocols.negotiate import is_extended_connect, websocket_accepted
from .proxy import HOP_BY_HOP
from .upstream.h2 import PUMPS
from .websocket_proxy import WebSocketRelay

if TYPE_CHECKING:
    from .connection import ConnectionTracker

__all__ = ["H2Connection"]

log = logging.getLogger("a3s_gateway.h2")

INF = float("inf")
_RECEIVE_SIZE = 65536
_HIGH_WATER = 262144
_INTERNAL_ERROR, _CANCEL = 0x2, 0x8
_NO_BODY_STATUS = frozenset({204, 304})


class _Stream:
    """One request's share of the connection: its inbound events and its wake-ups.

    A stream is also the ticker's item (`deadlines.Expirable`) for its upload: `deadline` is
    when its request body must have ended (read_body after its head; `inf` once it ended).
    """

    __slots__ = (
        "answered",
        "arrived",
        "body_done",
        "deadline",
        "events",
        "head",
        "late",
        "problem",
        "scope",
        "window",
    )

    def __init__(self, head: RequestHead, problem: str | None = None) -> None:
        self.head = head
        self.problem = problem  # why the request is invalid (answered 400, never dispatched)
        self.deadline = INF
        self.late = False  # the ticker cancelled the stream for missing its deadline
        self.answered = False  # the handler returned a response (its head goes out at once)
        self.events: deque[Event] = deque()
        self.arrived = anyio.Event()
        self.window = anyio.Event()
        self.scope = anyio.CancelScope()
        self.body_done = not head.has_body

    async def expire(self) -> None:
        """The request body missed read_body: the stream's task is cancelled, and answers 408
        if its response had not started (else the stream is reset)."""
        self.late = True
        self.scope.cancel()


class _Stall:
    """A response waiting for the client's flow-control window, as the ticker's item: when no
    byte of it could go out for the idle timeout (a client that advertises a window of 0 and
    never opens it), the stream's task is cancelled, as HTTP/1.1's write deadline cuts a client
    that does not read: the task closes the upstream exchange and resets the stream
    (RST_STREAM CANCEL). The rest of the connection lives on."""

    __slots__ = ("deadline", "peer", "stream")

    def __init__(self, stream: _Stream, peer: str, deadline: float) -> None:
        self.stream, self.peer, self.deadline = stream, peer, deadline

    async def expire(self) -> None:
        log.info(
            "HTTP/2 stream %d from %s: no flow-control window, reset", self.stream.head.stream_id, self.peer
        )
        self.stream.scope.cancel()


class _RequestBody:
    """The request body of one stream: chunks are acknowledged as the upstream side takes them."""

    __slots__ = ("_conn", "_done", "_stream")

    def __init__(self, conn: H2Connection, stream: _Stream) -> None:
        self._conn = conn
        self._stream = stream
        self._done = False

    def __aiter__(self) -> _RequestBody:
        return self

    async def __anext__(self) -> bytes:
        st, conn = self._stream, self._conn
        while not self._done:
            ev = await conn._next_event(st)
            if type(ev) is Body:
                return ev.data
            if type(ev) is Trailers:
                continue  # request trailers are not forwarded (as on HTTP/1.1)
            self._done = True
            if type(ev) is EndOfBody:
                st.body_done = True
                break
            raise ClientClosed("client reset the stream mid-request")
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self._done = True


class H2Connection:
    """Serves HTTP/2 streams on one accepted stream until either side closes it."""

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        dispatch: Handler,
        settings: ConnectionSettings,
        tracker: ConnectionTracker,
        *,
        peer: tuple[str, int],
        sni: str | None = None,
        initial: bytes = b"",
        h2_settings: H2Settings | None = None,
        watch: DeadlineWatch | None = None,
    ) -> None:
        self._stream = stream
        self._dispatch = dispatch
        self._settings = settings
        self._tracker = tracker
        self.adapter = H2ServerConnection(h2_settings)
        self._initial = initial
        self._streams: dict[int, _Stream] = {}
        # The listener's ticker watches the streams' deadlines (none without a listener).
        self._watch = watch
        self._trusted = bool(settings.trusted) and settings.trusted.trusts(peer[0])
        self._out = bytearray()
        self._out_ready = anyio.Event()
        self._drained = anyio.Event()
        self._writer_done = False
        self._goaway = False
        self._tg: anyio.abc.TaskGroup | None = None
        self._read_scope = anyio.CancelScope()
        self.peer = peer
        self.sni = sni
        self.scope = anyio.CancelScope()
        self.timed_out = self.client_gone = False
        self.read_deadline = self.write_deadline = INF
        self.probe_at = INF  # no hang-up probe: the reader always reads

    @property
    def busy(self) -> bool:
        return bool(self._streams)

    async def run(self) -> None:
        try:
            with self.scope:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    tg.start_soon(self._writer)
                    self._emit(self.adapter.data_to_send())
                    if self._tracker.draining:
                        self._start_goaway()
                    with self._read_scope:
                        await self._reader()
                    await self._flush()
                    tg.cancel_scope.cancel()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        except Exception:
            log.exception("HTTP/2 connection from %s failed", self.peer[0])
        finally:
            await anyio.aclose_forcefully(self._stream)

    # ------------------------------------------------------------------ deadlines (the ticker)

    def check(self, now: float) -> None:
        if now >= self.read_deadline or now >= self.write_deadline:
            self.timed_out = True
            self.scope.cancel()

    def close_if_idle(self) -> bool:
        """Drain: announce GOAWAY; the connection closes when its accepted streams are done."""
        self._start_goaway()
        if not self._streams:
            self._read_scope.cancel()  # run() flushes the GOAWAY and closes
            return True
        return False

    def _start_goaway(self) -> None:
        if not self._goaway:
            self._goaway = True
            self._emit(self.adapter.goaway())

    # ------------------------------------------------------------------ reading

    async def _reader(self) -> None:
        """Read until EOF, a protocol error, or GOAWAY with no stream left."""
        data, self._initial = self._initial, b""
        while True:
            if data and not self._feed(data):
                return
            if self._goaway and not self._streams:
                return
            self.read_deadline = time.monotonic() + self._settings.idle if not self._streams else INF
            try:
                data = await self._stream.receive(_RECEIVE_SIZE)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                self.client_gone = True
                for ev in self.adapter.receive_data(b""):
                    self._route(ev)
                return
            finally:
                self.read_deadline = INF

    def _feed(self, data: bytes) -> bool:
        """Hand bytes to the adapter and route its events; False when the connection must end."""
        adapter = self.adapter
        try:
            events = adapter.receive_data(data, time.monotonic())
        except H2ProtocolError as exc:
            log.debug("HTTP/2 protocol error from %s: %s", self.peer[0], exc.message)
            self._emit(exc.data)
            return False
        self._emit(adapter.data_to_send())
        for ev in events:
            self._route(ev)
        for st in self._streams.values():
            st.window.set()  # senders blocked on flow control re-check their window
        return True

    def _route(self, ev: Event) -> None:
        if type(ev) is RequestHead:
            invalid = self.adapter.invalid
            st = _Stream(ev, invalid.get(ev.stream_id) if invalid else None)
            if ev.has_body:  # watched once its task knows it is an upload (_serve_stream)
                st.deadline = time.monotonic() + self._settings.read_body
            self._streams[ev.stream_id] = st
            assert self._tg is not None
            self._tg.start_soon(self._serve_stream, st)
            return
        if type(ev) is ConnectionClosed:
            self._goaway = True  # the client will open no more streams
            return
        st_ = self._streams.get(ev.stream_id)  # type: ignore[union-attr]
        if st_ is None:
            return
        if type(ev) is Reset:
            st_.scope.cancel()
        if (type(ev) is EndOfBody or type(ev) is Reset) and st_.deadline < INF:
            st_.deadline = INF  # nothing more arrives
            if self._watch is not None:
                self._watch.discard(st_)
        st_.events.append(ev)
        st_.arrived.set()

    # ------------------------------------------------------------------ writing

    async def _next_event(self, st: _Stream) -> Event:
        """The stream's next event, waiting for it; DATA is acknowledged (WINDOW_UPDATE) as it
        is taken, so the client's window opens only as fast as its body is consumed."""
        while not st.events:
            st.arrived = anyio.Event()
            await st.arrived.wait()
        ev = st.events.popleft()
        if type(ev) is Body:
            self._emit(self.adapter.acknowledge(st.head.stream_id, len(ev.data)))
        return ev

    def _emit(self, data: bytes) -> None:
        if data:
            self._out += data
            self._out_ready.set()

    async def _writer(self) -> None:
        try:
            while True:
                if not self._out:
                    self._drained.set()
                    self._out_ready = anyio.Event()
                    await self._out_ready.wait()
                    continue
                data = bytes(self._out)
                self._out.clear()
                self.write_deadline = time.monotonic() + self._settings.idle
                try:
                    await self._stream.send(data)
                finally:
                    self.write_deadline = INF
        finally:
            self._writer_done = True
            self._drained.set()

    async def _room(self) -> None:
        """Wait until the write buffer is below the high-water mark (backpressure)."""
        while len(self._out) > _HIGH_WATER and not self._writer_done:
            self._drained = anyio.Event()
            await self._drained.wait()

    async def _flush(self) -> None:
        while self._out and not self._writer_done:
            self._drained = anyio.Event()
            await self._drained.wait()

    # ------------------------------------------------------------------ streams

    async def _serve_stream(self, st: _Stream) -> None:
        sid = st.head.stream_id
        tracker = self._tracker
        tracker.in_flight += 1
        tracker.requests += 1
        finished = False
        request: Request | None = None
        try:
            with st.scope:
                # The stream's own task group owns an upstream HTTP/2 request-body pump, so the
                # body can keep flowing up while the response streams down (gRPC bidi).
                async with anyio.create_task_group() as pumps:
                    PUMPS.set(pumps)
                    request = self._request(st)
                    key = None
                    if st.problem is not None:
                        response = error_response(request, BadRequest(st.problem))
                    else:
                        key = _as_websocket_upgrade(request) if is_extended_connect(st.head) else None
                        if (
                            st.deadline < INF
                            and key is None
                            and not request.is_grpc
                            and self._watch is not None
                        ):
                            # An upload still arriving: the ticker holds it to its deadline. Not
                            # a WebSocket's DATA (RFC 8441), nor a gRPC call's request stream,
                            # which may rightly stay open as long as the call (client and bidi
                            # streaming): `grpc-timeout` and the idle timeouts bound it instead.
                            self._watch.add(st)
                        response = await run_dispatch(self._dispatch, request)
                    st.answered = True
                    if response.upgrade is not None:
                        finished = await self._tunnel(st, response, key)
                    else:
                        finished = await self._respond(st, request, response)
            if st.late and not st.answered and request is not None:
                finished = await self._refuse_late_body(st, request)
        except Exception:
            log.exception("HTTP/2 stream %d from %s failed", sid, self.peer[0])
        finally:
            tracker.in_flight -= 1
            self._streams.pop(sid, None)
            if self._watch is not None:
                self._watch.discard(st)
            if not finished:
                self._emit(self.adapter.send(Reset(sid, _CANCEL)))
            elif not st.body_done:
                # RFC 9113 §8.1: the response is complete; the rest of the upload is not needed.
                self._emit(self.adapter.send(Reset(sid, 0)))
            self.adapter.handler_done(sid)  # a stream the client reset stops counting only now
            if self._goaway and not self._streams:
                self._read_scope.cancel()  # run() flushes what is left and closes

    async def _refuse_late_body(self, st: _Stream, request: Request) -> bool:
        """The request body missed read_body and the handler was cancelled before it answered:
        answer 408 on the stream (the rest of the upload is then refused with RST_STREAM)."""
        response = error_response(request, RequestTimeout("request body not received within read_body"))
        with anyio.move_on_after(self._settings.idle):
            return await self._respond(st, request, response)
        return False

    async def _respond(self, st: _Stream, request: Request, response: Response) -> bool:
        """Write `response` on the stream; returns whether it ended cleanly."""
        adapter, sid = self.adapter, st.head.stream_id
        body = response.body
        headers = [(n, v) for n, v in response.headers.raw if n not in HOP_BY_HOP]
        head = ResponseHead(sid, response.status, headers)
        try:
            if _bodiless(request, response):
                self._emit(adapter.send(head, end_stream=True))
                await _finish_body(response)
                return True
            chunks, ended = [], False
            ready = getattr(body, "ready", None)
            if ready is not None:
                chunks, ended = ready()
            if ended and not chunks and response.trailers is None:
                # Everything is here and empty (e.g. an upstream trailers-only gRPC answer).
                self._emit(adapter.send(head, end_stream=True))
                await _drain(body)
                return True
            self._emit(adapter.send(head))
            for chunk in chunks:
                await self._send_chunk(st, chunk)
            async for chunk in body:
                if chunk:
                    await self._send_chunk(st, chunk)
            if response.trailers is not None and response.trailers.raw:
                self._emit(adapter.send(Trailers(sid, response.trailers.raw)))
            else:
                self._emit(adapter.send(EndOfBody(sid)))
            return True
        except GatewayError as exc:
            log.info("HTTP/2 response aborted mid-stream: %s", exc)
            await _close_body(response)
            if request.is_grpc:
                # The head is out: a gRPC client still learns why, from the trailers.
                self._emit(adapter.send(Trailers(sid, status_fields(exc))))
                return True
            return False
        except H2StreamError as exc:
            log.info("HTTP/2 stream %d failed: %s", sid, exc.message)
            await _close_body(response)
            return False
        except BaseException:
            await _close_body(response)
            raise

    async def _tunnel(self, st: _Stream, response: Response, key: bytes | None) -> bool:
        """RFC 8441: the backend accepted the WebSocket upgrade made for an extended CONNECT.

        The client gets 200 on its stream, whose DATA frames then carry WebSocket frames both
        ways, relayed to the backend's upgraded connection like an HTTP/1.1 upgrade's.
        """
        upgraded = response.upgrade
        assert upgraded is not None
        sid = st.head.stream_id
        try:
            head = ResponseHead(sid, response.status, response.headers.raw)
            if key is None or not websocket_accepted(head, key):
                log.info("stream %d: the backend's 101 does not complete the WebSocket upgrade", sid)
                await upgraded.aclose()
                return False
            headers = [(n, v) for n, v in response.headers.raw if n not in _HANDSHAKE_ONLY]
            self._emit(self.adapter.send(ResponseHead(sid, 200, headers)))
            settings = self._settings
            relay = WebSocketRelay(
                _StreamIO(self, st),
                upgraded.stream,
                idle=settings.websocket_idle,
                max_message_size=settings.websocket_message,
                stream_id=sid,
            )
            await relay.run(b"", upgraded.leftover)
            return True
        finally:
            await _close_body(response)

    async def _send_chunk(self, st: _Stream, chunk: bytes) -> None:
        """Hand one chunk to the adapter, then wait for the client's window and the socket."""
        sid, adapter = st.head.stream_id, self.adapter
        self._emit(adapter.send(Body(sid, chunk)))
        if not adapter.writable(sid):
            await self._wait_window(st)
        await self._room()

    async def _wait_window(self, st: _Stream) -> None:
        """Wait until the client's window has taken the stream's pending data. The idle clock
        restarts whenever some of it goes out: only a stream that makes no progress expires."""
        sid, adapter, idle, watch = st.head.stream_id, self.adapter, self._settings.idle, self._watch
        pending = adapter.pending(sid)
        stall = _Stall(st, self.peer[0], time.monotonic() + idle)
        if watch is not None:
            watch.add(stall)
        try:
            while not adapter.writable(sid):
                st.window = anyio.Event()
                await st.window.wait()
                left = adapter.pending(sid)
                if left < pending:
                    pending, stall.deadline = left, time.monotonic() + idle
        finally:
            if watch is not None:
                watch.discard(stall)

    def _request(self, st: _Stream) -> Request:
        head = st.head
        body = _RequestBody(self, st) if head.has_body else NO_BODY
        request = build_request(
            head, body, self._settings, self.peer, peer_trusted=self._trusted, sni=self.sni
        )
        request.stream_id = head.stream_id
        return request


# Fields of the HTTP/1.1 handshake that have no meaning on an RFC 8441 stream (§5).
_HANDSHAKE_ONLY = frozenset({b"upgrade", b"connection", b"sec-websocket-accept"})


def _as_websocket_upgrade(request: Request) -> bytes:
    """Turn an RFC 8441 extended CONNECT into the HTTP/1.1 upgrade the backend expects (RFC
    6455 §4.1), in place; returns the Sec-WebSocket-Key it carries. The stream's DATA is the
    WebSocket connection itself, not a request body: the upgrade request has none."""
    key = base64.b64encode(os.urandom(16))
    headers = request.headers
    headers.raw = [(n, v) for n, v in headers.raw if n != b":protocol" and n != b"content-length"]
    headers.set("upgrade", "websocket")
    headers.set("connection", "upgrade")
    headers.set("sec-websocket-key", key)
    headers.setdefault("sec-websocket-version", "13")
    request.method = "GET"
    request.http_version = "1.1"
    request.body = NO_BODY
    request.content_length = 0
    return key


class _StreamIO(anyio.abc.ByteStream):
    """One HTTP/2 stream as a byte stream (for the WebSocket relay): DATA in, DATA out, with
    the same flow control as any stream."""

    def __init__(self, conn: H2Connection, st: _Stream) -> None:
        self._conn = conn
        self._st = st
        self._ended = False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        st, conn = self._st, self._conn
        while True:
            ev = await conn._next_event(st)
            if type(ev) is Body:
                return ev.data
            if type(ev) is EndOfBody:
                st.body_done = True
                raise anyio.EndOfStream
            if type(ev) is Reset:
                raise anyio.BrokenResourceError

    async def send(self, item: bytes) -> None:
        if self._ended:
            raise anyio.ClosedResourceError
        await self._conn._send_chunk(self._st, item)

    async def send_eof(self) -> None:
        if not self._ended:
            self._ended = True
            self._conn._emit(self._conn.adapter.send(EndOfBody(self._st.head.stream_id)))

    async def aclose(self) -> None:
        await self.send_eof()


def _bodiless(request: Request, response: Response) -> bool:
    """A response that carries no body by definition or by its own declaration.

    A gRPC head that already holds `grpc-status` is a Trailers-Only response: it must reach the
    client as one HEADERS frame with END_STREAM, or gRPC clients report the call as broken.
    """
    if request.method == "HEAD" or response.status in _NO_BODY_STATUS:
        return True
    if request.is_grpc and "grpc-status" in response.headers:
        return True
    return response.headers.get("content-length") == "0" and response.trailers is None


async def _finish_body(response: Response) -> None:
    """Let a body that must be empty end normally (its upstream stream is then released
    cleanly, not reset); anything it still holds is dropped."""
    try:
        with anyio.move_on_after(1.0):
            await _drain(response.body)
            return
    except Exception:
        pass
    await _close_body(response)


async def _drain(body: object) -> None:
    """Consume an ended body so its upstream connection is released cleanly."""
    async for _ in body:  # type: ignore[attr-defined]
        pass


async def _close_body(response: Response) -> None:
    with anyio.CancelScope(shield=True):
        try:
            await response.aclose()
        except Exception:
            log.debug("error while closing an abandoned response body", exc_info=True)
