"""WebSocket proxying after the upgrade: frames relayed both ways between two sockets.

The opening handshake went through the normal request path (router, middlewares, service,
proxy) and the backend answered 101; from there `WebSocketRelay` owns both sockets. Each
direction is a pump: read bytes, let the source side's `WebSocketConnection` turn them into
events, let the destination side's turn each event into frames, write. Nothing is assembled:
a message travels frame piece by frame piece, and a slow reader blocks the write, which stops
the read on the other side (memory per connection stays bounded by one read).

* Close: a close frame is relayed like any frame, and so is the answer, which completes the
  handshake on both sides; the relay ends when both sides are closed. A side that drops its
  transport (1006) makes the relay drop the other one, so the far peer sees 1006 too.
* Ping/pong are relayed (keep-alive is end to end); any frame counts as activity.
* Idle: no frame either way for `idle` seconds closes both sides with 1001.
* Limits: a message over `max_message_size` closes its sender with 1009 and the other side
  with 1001 ("going away"); a protocol violation closes its sender with 1002/1007 likewise.
* A close handshake that the other side does not finish within `close_timeout` is cut.
"""

from __future__ import annotations

import logging
import time

import anyio
import anyio.abc

from .events import WebSocketClose
from .protocols.websocket import WebSocketConnection, WebSocketError

__all__ = ["WebSocketRelay"]

log = logging.getLogger("a3s_gateway.websocket")

_RECEIVE_SIZE = 65536
_GOING_AWAY, _ABNORMAL = 1001, 1006
_IO_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class _Side:
    __slots__ = ("name", "stream", "ws")

    def __init__(self, name: str, stream: anyio.abc.ByteStream, ws: WebSocketConnection) -> None:
        self.name = name
        self.stream = stream
        self.ws = ws

    async def write(self, data: bytes) -> bool:
        if not data:
            return True
        try:
            await self.stream.send(data)
        except _IO_ERRORS:
            return False
        return True


class WebSocketRelay:
    """Relays one upgraded connection between a client and a backend until both close."""

    def __init__(
        self,
        client: anyio.abc.ByteStream,
        backend: anyio.abc.ByteStream,
        *,
        idle: float = 300.0,
        max_message_size: int = 16 * 1024 * 1024,
        close_timeout: float = 10.0,
        stream_id: int = 1,
    ) -> None:
        limit = max_message_size
        front = WebSocketConnection(client=False, stream_id=stream_id, max_message_size=limit)
        back = WebSocketConnection(client=True, stream_id=stream_id, max_message_size=limit)
        self.client = _Side("client", client, front)
        self.backend = _Side("backend", backend, back)
        self._idle = idle
        self._close_timeout = close_timeout
        self._last = time.monotonic()
        self._closing_since: float | None = None
        self._scope = anyio.CancelScope()
        # Close codes as seen from each side (for logs and tests).
        self.client_close: int | None = None
        self.backend_close: int | None = None

    async def run(self, client_leftover: bytes = b"", backend_leftover: bytes = b"") -> None:
        try:
            with self._scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._pump, self.client, self.backend, client_leftover)
                    tg.start_soon(self._pump, self.backend, self.client, backend_leftover)
                    tg.start_soon(self._watchdog)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.aclose_forcefully(self.client.stream)
                await anyio.aclose_forcefully(self.backend.stream)

    async def _pump(self, src: _Side, dst: _Side, leftover: bytes) -> None:
        data, first = leftover, True
        while True:
            if (data or not first) and not await self._relay(src, dst, data):
                self._scope.cancel()  # one side is gone: drop the other
                return
            if self.client.ws.closed and self.backend.ws.closed:
                self._scope.cancel()  # both handshakes complete
                return
            if src.ws.closed:
                return  # this side is done; the other direction finishes the handshake
            first = False
            try:
                data = await src.stream.receive(_RECEIVE_SIZE)
            except _IO_ERRORS:
                data = b""
            self._last = time.monotonic()

    async def _relay(self, src: _Side, dst: _Side, data: bytes) -> bool:
        """Relay the events in `data` (b"" = EOF); False when the relay must end now."""
        try:
            events = src.ws.receive_data(data)
        except WebSocketError as exc:
            log.info("WebSocket %s broke the protocol: %s", src.name, exc.message)
            await src.write(exc.data)
            self._record(src, exc.code)
            self._closing_since = time.monotonic()
            return await dst.write(dst.ws.send(WebSocketClose(dst.ws.stream_id, _GOING_AWAY, exc.message)))
        for ev in events:
            if type(ev) is WebSocketClose:
                self._record(src, ev.code)
                if ev.code == _ABNORMAL:
                    dst.ws.send(ev)
                    return False  # cut the other transport too: its peer sees 1006 as well
                if self._closing_since is None:
                    self._closing_since = time.monotonic()
            if not await dst.write(dst.ws.send(ev)):
                return False
        return True

    def _record(self, side: _Side, code: int) -> None:
        if side is self.client:
            self.client_close = code
        else:
            self.backend_close = code

    async def _watchdog(self) -> None:
        while True:
            now = time.monotonic()
            if self._closing_since is not None:
                deadline = self._closing_since + self._close_timeout
                if now >= deadline:
                    log.info("WebSocket close handshake not completed in %gs: cutting", self._close_timeout)
                    self._scope.cancel()
                    return
            else:
                deadline = self._last + self._idle
                if now >= deadline:
                    await self._close_both(_GOING_AWAY, "idle timeout")
                    continue
            await anyio.sleep(max(0.01, deadline - now))

    async def _close_both(self, code: int, reason: str) -> None:
        self._closing_since = time.monotonic()
        for side in (self.client, self.backend):
            await side.write(side.ws.send(WebSocketClose(side.ws.stream_id, code, reason)))
