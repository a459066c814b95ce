"""The event vocabulary every layer of the data plane speaks.

Protocol adapters (`runtime/protocols/`) turn bytes into these events and these events into
bytes; connections, the proxy and the upstream client only ever see events. Each carries the
stream id it belongs to (always 1 on HTTP/1.1, the h2 stream id on HTTP/2), so HTTP/2 in and
HTTP/1.1 out is plumbing, not a special case. Headers are `(name, value)` byte pairs with the
name lower-cased, in wire order, repeated names kept.
"""

from __future__ import annotations

from dataclasses import dataclass

HeaderList = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class RequestHead:
    stream_id: int
    method: bytes
    target: bytes
    headers: HeaderList
    http_version: bytes = b"1.1"
    scheme: bytes = b"http"
    authority: bytes = b""
    # Whether a body follows (Content-Length > 0, chunked, or HTTP/2 without END_STREAM).
    has_body: bool = False


@dataclass(frozen=True, slots=True)
class InformationalResponse:
    stream_id: int
    status: int
    headers: HeaderList


@dataclass(frozen=True, slots=True)
class ResponseHead:
    stream_id: int
    status: int
    headers: HeaderList
    http_version: bytes = b"1.1"
    reason: bytes = b""


@dataclass(frozen=True, slots=True)
class Body:
    stream_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfBody:
    stream_id: int


@dataclass(frozen=True, slots=True)
class Trailers:
    stream_id: int
    headers: HeaderList


@dataclass(frozen=True, slots=True)
class Reset:
    """The stream was aborted (HTTP/2 RST_STREAM, or an HTTP/1.1 connection cut mid-message)."""

    stream_id: int
    error_code: int = 0


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed the connection (EOF) or announced it will (GOAWAY)."""

    last_stream_id: int = 0


Event = (
    RequestHead
    | InformationalResponse
    | ResponseHead
    | Body
    | EndOfBody
    | Trailers
    | Reset
    | ConnectionClosed
)


# WebSocket (RFC 6455) after a completed upgrade, on both sides of a proxied connection. The
# stream id is 1 on an HTTP/1.1 connection, the h2 stream id for RFC 8441 (WebSocket over HTTP/2).


@dataclass(frozen=True, slots=True)
class WebSocketMessage:
    """A piece of a data message: `str` for text, `bytes` for binary; `final` ends the message.

    Messages are relayed piece by piece as frames arrive, never assembled in memory.
    """

    stream_id: int
    data: bytes | str
    final: bool = True


@dataclass(frozen=True, slots=True)
class WebSocketPing:
    stream_id: int
    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class WebSocketPong:
    stream_id: int
    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class WebSocketClose:
    """A close frame (code 1005 when it carried none), or 1006 when the transport just ended."""

    stream_id: int
    code: int = 1000
    reason: str = ""


WebSocketEvent = WebSocketMessage | WebSocketPing | WebSocketPong | WebSocketClose
