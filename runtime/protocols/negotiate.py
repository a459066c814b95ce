"""Pure decisions about which protocol a connection or a request speaks (STYLE.md practice 4).

* `choose_protocol` picks HTTP/1.1 or HTTP/2 for a new client connection from the TLS ALPN
  result or, on a plain connection, from the first bytes read: the HTTP/2 connection preface
  (RFC 9113 §3.4, "prior knowledge") means h2c. It never consumes anything: `negotiate` returns
  the new adapter together with every byte read so far, which the owner feeds to it first.
* `is_websocket_upgrade` recognises an HTTP/1.1 WebSocket opening handshake (RFC 6455 §4.1),
  `is_extended_connect` its HTTP/2 form (RFC 8441 §4: CONNECT with `:protocol`), and
  `websocket_accepted` checks that a backend's answer completes the upgrade.

The h2c upgrade dance (`Upgrade: h2c` on an HTTP/1.1 request) is not offered: RFC 9113 §3.1
deprecates it and no mainstream client uses it; prior knowledge and ALPN cover h2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from ..events import HeaderList, RequestHead, ResponseHead
from .websocket import accept_key

__all__ = [
    "Negotiated",
    "choose_protocol",
    "header_tokens",
    "is_extended_connect",
    "is_websocket_upgrade",
    "negotiate",
    "websocket_accepted",
]

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_PREFACE_LINE = len(b"PRI * HTTP/2.0\r\n")
Protocol = Literal["h2", "http/1.1"]
A = TypeVar("A")


def choose_protocol(alpn: str | None, first: bytes) -> Protocol | None:
    """ "h2" or "http/1.1"; None while `first` is too short to tell (read more, then ask again).

    ALPN decides when TLS negotiated it (RFC 7301); without it the connection is h2 when it
    starts with the preface. An HTTP/1.1 request differs from the preface within its first
    bytes, so it is never delayed waiting for 24 bytes. Bytes that begin with the preface's
    request line (`PRI * HTTP/2.0`, a method reserved for the preface, RFC 7540 §11.6, and a
    version no HTTP/1.x client sends) and then differ are a broken preface, not an HTTP/1.1
    request: "h2", whose adapter answers it with GOAWAY PROTOCOL_ERROR (RFC 9113 §3.4).
    """
    if alpn == "h2":
        return "h2"
    if alpn is not None and alpn != "":
        return "http/1.1"
    n = min(len(first), len(H2_PREFACE))
    if first[:n] != H2_PREFACE[:n]:
        return "h2" if first[:_PREFACE_LINE] == H2_PREFACE[:_PREFACE_LINE] else "http/1.1"
    return "h2" if n == len(H2_PREFACE) else None


@dataclass(frozen=True, slots=True)
class Negotiated(Generic[A]):
    """The adapter for a connection and the bytes it must be fed first."""

    protocol: Protocol
    adapter: A
    leftover: bytes


def negotiate(
    alpn: str | None,
    first: bytes,
    *,
    http1: Callable[[], A],
    http2: Callable[[], A],
) -> Negotiated[A] | None:
    """Build the adapter `choose_protocol` picks; None means read more bytes first."""
    protocol = choose_protocol(alpn, first)
    if protocol is None:
        return None
    return Negotiated(protocol, http2() if protocol == "h2" else http1(), first)


def header_tokens(headers: HeaderList, name: bytes) -> set[bytes]:
    """The lower-cased comma-separated tokens of every `name` field (RFC 9110 §5.6.1)."""
    out: set[bytes] = set()
    for n, v in headers:
        if n == name:
            out.update(t.strip().lower() for t in v.split(b","))
    out.discard(b"")
    return out


def is_websocket_upgrade(head: RequestHead) -> bool:
    """An HTTP/1.1 GET asking to switch to WebSocket (RFC 6455 §4.1, RFC 9110 §7.8)."""
    return (
        head.method == b"GET"
        and head.http_version == b"1.1"
        and b"websocket" in header_tokens(head.headers, b"upgrade")
        and b"upgrade" in header_tokens(head.headers, b"connection")
    )


def is_extended_connect(head: RequestHead, protocol: bytes = b"websocket") -> bool:
    """An HTTP/2 extended CONNECT for `protocol` (RFC 8441 §4); the h2 adapter keeps `:protocol`."""
    return (
        head.method == b"CONNECT"
        and head.http_version == b"2"
        and any(n == b":protocol" and v.lower() == protocol for n, v in head.headers)
    )


def websocket_accepted(head: ResponseHead, key: bytes | None) -> bool:
    """Whether a backend's response completes the upgrade requested with Sec-WebSocket-Key `key`."""
    if head.status != 101 or b"websocket" not in header_tokens(head.headers, b"upgrade"):
        return False
    if key is None:
        return True
    accept = next((v for n, v in head.headers if n == b"sec-websocket-accept"), b"")
    return accept.strip() == accept_key(key)
