"""WebSocket frames (RFC 6455) as a pure sans-IO adapter around wsproto, for both sides of a proxy.

The opening handshake is plain HTTP: the client's Upgrade request runs through the router and
middleware chain like any request, the backend's 101 completes it (see `negotiate.py`), and
only then does each side of the connection switch to a `WebSocketConnection`, fed first with
the bytes read past the handshake. `client=False` faces the browser (frames arrive masked),
`client=True` faces the backend (we mask).

Events are `runtime/events.py`'s WebSocket vocabulary. Data is relayed frame piece by frame
piece (`WebSocketMessage.final` marks the end of a message), so a large message never sits in
memory whole; `max_message_size` bounds a message all the same (close code 1009, §7.4.1),
because the peer on the other side may assemble it. Pings and pongs are reported, not answered:
a proxy relays them so that keep-alive works end to end.

Close handshake (§5.5.1, §7): a received close is reported as `WebSocketClose`; relaying it to
the other side and relaying that side's answer back completes both handshakes. Codes 1005 (no
status) and 1006 (transport lost) are never sent on the wire: 1005 becomes an empty close frame,
and sending 1006 produces no bytes, the owner just closes the transport (so the far peer sees
1006 too). A protocol violation raises `WebSocketError` with the close frame to send first.
"""

from __future__ import annotations

import base64
import hashlib

from wsproto.connection import CLIENT, SERVER, Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError

from ..events import WebSocketClose, WebSocketEvent, WebSocketMessage, WebSocketPing, WebSocketPong
from .http1 import ProtocolError

__all__ = ["WebSocketConnection", "WebSocketError", "accept_key"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
_TOO_BIG = 1009
_NO_STATUS, _ABNORMAL, _TLS_FAILED = 1005, 1006, 1015


def accept_key(key: bytes) -> bytes:
    """The Sec-WebSocket-Accept value for a Sec-WebSocket-Key (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.strip() + _GUID).digest())


class WebSocketError(ProtocolError):
    """The peer broke the protocol or a limit: send `data` (a close frame), then close."""

    def __init__(self, code: int, message: str, data: bytes) -> None:
        super().__init__(400, message)
        self.code = code
        self.data = data


class WebSocketConnection:
    """One side of an established WebSocket connection."""

    __slots__ = ("_closed", "_max", "_size", "_ws", "stream_id")

    def __init__(self, *, client: bool, stream_id: int = 1, max_message_size: int = 16 * 1024 * 1024) -> None:
        self._ws = Connection(CLIENT if client else SERVER)
        self._max = max_message_size
        self._size = 0  # bytes of the message being received so far
        self._closed = False
        self.stream_id = stream_id

    def receive_data(self, data: bytes) -> list[WebSocketEvent]:
        """Feed bytes read from the transport (b"" at EOF); returns the events they complete."""
        ws = self._ws
        if self._closed or ws.state is ConnectionState.CLOSED:
            return []  # anything after the close handshake (or our abort) is ignored
        if not data:
            self._closed = True
            return [WebSocketClose(self.stream_id, _ABNORMAL)]
        ws.receive_data(data)
        out: list[WebSocketEvent] = []
        sid = self.stream_id
        for ev in ws.events():
            if isinstance(ev, TextMessage | BytesMessage):
                self._count(ev.data)
                out.append(
                    WebSocketMessage(
                        sid, bytes(ev.data) if isinstance(ev, BytesMessage) else ev.data, ev.message_finished
                    )
                )
                if ev.message_finished:
                    self._size = 0
            elif isinstance(ev, Ping):
                out.append(WebSocketPing(sid, bytes(ev.payload)))
            elif isinstance(ev, Pong):
                out.append(WebSocketPong(sid, bytes(ev.payload)))
            elif isinstance(ev, CloseConnection):
                if ws.state is ConnectionState.OPEN or ws.state is ConnectionState.LOCAL_CLOSING:
                    # wsproto reports a parse failure as a close it did not receive.
                    raise self._abort(int(ev.code), ev.reason or "protocol error")
                out.append(WebSocketClose(sid, int(ev.code), ev.reason or ""))
        return out

    def _count(self, data: bytes | bytearray | str) -> None:
        n = len(data) if isinstance(data, bytes | bytearray) or data.isascii() else len(data.encode())
        self._size += n
        if self._size > self._max:
            raise self._abort(_TOO_BIG, "message too big")

    def _abort(self, code: int, reason: str) -> WebSocketError:
        data = b""
        if self._ws.state is ConnectionState.OPEN:
            data = bytes(self._ws.send(CloseConnection(code, reason)))
        self._closed = True
        return WebSocketError(code, reason, data)

    def send(self, event: WebSocketEvent) -> bytes:
        """Serialise one event; b"" when the state no longer allows it (e.g. after a close)."""
        if self._closed:
            return b""
        ws = self._ws
        try:
            if type(event) is WebSocketMessage:
                if isinstance(event.data, str):
                    return bytes(ws.send(TextMessage(event.data, message_finished=event.final)))
                return bytes(ws.send(BytesMessage(event.data, message_finished=event.final)))
            if type(event) is WebSocketPing:
                return bytes(ws.send(Ping(event.payload)))
            if type(event) is WebSocketPong:
                return bytes(ws.send(Pong(event.payload)))
            if type(event) is WebSocketClose:
                return self._send_close(event)
        except LocalProtocolError:
            return b""  # the connection is closing: nothing more may be sent
        raise TypeError(f"not a WebSocket event: {type(event).__name__}")

    def _send_close(self, event: WebSocketClose) -> bytes:
        if event.code == _ABNORMAL or event.code == _TLS_FAILED:
            self._closed = True  # no frame: the owner closes the transport
            return b""
        if event.code == _NO_STATUS:
            return bytes(self._ws.send(CloseConnection(CloseReason.NO_STATUS_RCVD)))
        return bytes(self._ws.send(CloseConnection(event.code, event.reason)))

    @property
    def closed(self) -> bool:
        """The close handshake is complete (both closes seen) or the connection was aborted."""
        return self._closed or self._ws.state is ConnectionState.CLOSED

    @property
    def close_sent(self) -> bool:
        """We sent a close frame (the owner waits for the answer, with a timeout)."""
        return self._ws.state is ConnectionState.LOCAL_CLOSING or self.closed
