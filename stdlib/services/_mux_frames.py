"""One side of a WebSocket whose messages are read whole, for `websocket_mux` (on wsproto).

The gateway's relay (runtime/websocket_proxy.py) passes frames on piece by piece; a multiplexer
must read each message whole, since an envelope is only meaningful once complete. So messages are
assembled here, up to `limit` bytes (past it: close 1009, RFC 6455 §7.4.1). Pings are reported
so the owner answers them; a close is reported once, and answered here.
"""

from __future__ import annotations

from wsproto.connection import CLIENT, SERVER, Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.utilities import LocalProtocolError

__all__ = ["Closed", "FrameError", "Frames", "Incoming"]

_TOO_BIG = 1009


class Closed:
    """The peer closed (code 1006: the transport ended without a close frame); `answer` is our
    close frame completing the handshake, to send (b"" when we had closed first)."""

    __slots__ = ("answer", "code", "reason")

    def __init__(self, code: int, reason: str = "", answer: bytes = b"") -> None:
        self.code, self.reason, self.answer = code, reason, answer


Incoming = str | bytes | Ping | Closed


class FrameError(Exception):
    """The peer broke the protocol or the size limit: send `data` (our close), then end."""

    def __init__(self, code: int, reason: str, data: bytes) -> None:
        super().__init__(reason)
        self.code, self.reason, self.data = code, reason, data


class Frames:
    def __init__(self, *, client: bool, limit: int) -> None:
        self._ws = Connection(CLIENT if client else SERVER)
        self._limit = limit
        self._parts: list[str | bytes] = []
        self._size = 0

    @property
    def open(self) -> bool:
        return self._ws.state is ConnectionState.OPEN

    def feed(self, data: bytes) -> list[Incoming]:
        """Bytes read from the transport (b"" at its end): the whole messages, pings and close."""
        if self._ws.state is ConnectionState.CLOSED:
            return []
        if not data:
            return [Closed(1006)]
        self._ws.receive_data(data)
        out: list[Incoming] = []
        for event in self._ws.events():
            if isinstance(event, TextMessage | BytesMessage):
                whole = self._assemble(event)
                if whole is not None:
                    out.append(whole)
            elif isinstance(event, Ping):
                out.append(event)
            elif isinstance(event, CloseConnection):
                out.append(self._closed(event))
        return out

    def _assemble(self, event: TextMessage | BytesMessage) -> str | bytes | None:
        data = event.data if isinstance(event.data, str) else bytes(event.data)
        self._size += len(data)
        if self._size > self._limit:
            raise FrameError(_TOO_BIG, "message too big", self.close(_TOO_BIG, "message too big"))
        self._parts.append(data)
        if not event.message_finished:
            return None
        parts, self._parts, self._size = self._parts, [], 0
        if isinstance(data, str):
            return "".join(p for p in parts if isinstance(p, str))
        return b"".join(p for p in parts if isinstance(p, bytes))

    def _closed(self, event: CloseConnection) -> Closed:
        if self._ws.state is ConnectionState.OPEN or self._ws.state is ConnectionState.LOCAL_CLOSING:
            # wsproto reports a parse failure as a close it did not receive.
            raise FrameError(int(event.code), event.reason or "protocol error", self.close(int(event.code)))
        answer = b""
        if self._ws.state is ConnectionState.REMOTE_CLOSING:
            answer = bytes(self._ws.send(event.response()))
        return Closed(int(event.code), event.reason or "", answer)

    def message(self, data: str | bytes) -> bytes:
        """A whole message as one frame (b"" once closing)."""
        event = TextMessage(data) if isinstance(data, str) else BytesMessage(data)
        return self._send(event)

    def pong(self, ping: Ping) -> bytes:
        return self._send(Pong(ping.payload))

    def close(self, code: int = 1000, reason: str = "") -> bytes:
        """Our close frame (b"" when one was already sent or the connection is closed)."""
        return self._send(CloseConnection(code, reason)) if self.open else b""

    def _send(self, event: TextMessage | BytesMessage | Pong | CloseConnection) -> bytes:
        try:
            return bytes(self._ws.send(event))
        except LocalProtocolError:
            return b""
