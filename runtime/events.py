"""The event vocabulary every layer of the data plane speaks.

Protocol adapters (`runtime/protocols/`) turn bytes into these events and these events into
bytes; connections, the proxy and the upstream client only ever see events. Each carries the
stream id it belongs to (always 1 on HTTP/1.1, the h2 stream id on HTTP/2), so HTTP/2 in and
HTTP/1.1 out is plumbing, not a special case. Headers are `(name, value)` byte pairs with the
name lower-cased, in wire order, repeated names kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

HeaderList = list[tuple[bytes, bytes]]
_E = TypeVar("_E")


@dataclass_transform(frozen_default=True)
def event(cls: type[_E]) -> type[_E]:
    """An event class: a slotted dataclass that is frozen for the type checker, which refuses
    any assignment to a field (mypy --strict runs on all of runtime/ and stdlib/).

    Not frozen at run time: a frozen dataclass's __init__ sets each field with
    `object.__setattr__`, a C wrapper call per field, and an HTTP/1.1 request cycle builds
    about ten events (some 30 fields: ~18,000 instructions, 3 % of a proxied request, measured
    with benchmarks/callgrind.py). Hash and equality are a frozen dataclass's.
    """
    return dataclass(slots=True, unsafe_hash=True)(cls)


@event
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


@event
class InformationalResponse:
    stream_id: int
    status: int
    headers: HeaderList


@event
class ResponseHead:
    stream_id: int
    status: int
    headers: HeaderList
    http_version: bytes = b"1.1"
    reason: bytes = b""


@event
class Body:
    stream_id: int
    data: bytes


@event
class EndOfBody:
    stream_id: int


# Events are immutable: one end of body serves every HTTP/1.1 message (stream 1).
END_OF_BODY = EndOfBody(1)


@event
class Trailers:
    stream_id: int
    headers: HeaderList


@event
class Reset:
    """The stream was aborted (HTTP/2 RST_STREAM, or an HTTP/1.1 connection cut mid-message)."""

    stream_id: int
    error_code: int = 0


@event
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


@event
class WebSocketMessage:
    """A piece of a data message: `str` for text, `bytes` for binary; `final` ends the message.

    Messages are relayed piece by piece as frames arrive, never assembled in memory.
    """

    stream_id: int
    data: bytes | str
    final: bool = True


@event
class WebSocketPing:
    stream_id: int
    payload: bytes = b""


@event
class WebSocketPong:
    stream_id: int
    payload: bytes = b""


@event
class WebSocketClose:
    """A close frame (code 1005 when it carried none), or 1006 when the transport just ended."""

    stream_id: int
    code: int = 1000
    reason: str = ""


WebSocketEvent = WebSocketMessage | WebSocketPing | WebSocketPong | WebSocketClose
