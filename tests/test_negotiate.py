"""Protocol negotiation: pure decisions over ALPN, first bytes and request heads."""

from __future__ import annotations

import pytest

from a3s_gateway.runtime.events import RequestHead, ResponseHead
from a3s_gateway.runtime.protocols import ServerConnection
from a3s_gateway.runtime.protocols.http2 import H2ServerConnection
from a3s_gateway.runtime.protocols.negotiate import (
    choose_protocol,
    header_tokens,
    is_extended_connect,
    is_websocket_upgrade,
    negotiate,
    websocket_accepted,
)
from a3s_gateway.runtime.protocols.websocket import accept_key

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@pytest.mark.parametrize(
    ("alpn", "first", "expected"),
    [
        ("h2", b"", "h2"),
        ("http/1.1", PREFACE, "http/1.1"),  # ALPN wins over sniffing
        (None, PREFACE + b"\x00\x00", "h2"),
        (None, PREFACE, "h2"),
        (None, b"PRI * HTTP/2", None),  # could still be the preface: read more
        (None, b"", None),
        (None, b"G", "http/1.1"),  # decided on the first byte
        (None, b"GET / HTTP/1.1\r\n", "http/1.1"),
        (None, b"PRI * HTTP/1.1\r\n", "http/1.1"),
        # The preface's request line, then something else: a broken preface (RFC 9113 §3.4).
        (None, b"PRI * HTTP/2.0\r\n\r\nXX", "h2"),
        (None, b"PRI * HTTP/2.0\r\n", None),
        (None, b"PRI * HTTP/2.0\r", None),
        ("", PREFACE, "h2"),
    ],
)
def test_choose_protocol(alpn: str | None, first: bytes, expected: str | None) -> None:
    assert choose_protocol(alpn, first) == expected


def test_negotiate_returns_the_adapter_and_every_byte_read() -> None:
    first = PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    got = negotiate(None, first, http1=ServerConnection, http2=H2ServerConnection)
    assert got is not None and got.protocol == "h2" and isinstance(got.adapter, H2ServerConnection)
    assert got.leftover == first
    assert got.adapter.receive_data(got.leftover) == []
    request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    got1 = negotiate(None, request[:5], http1=ServerConnection, http2=H2ServerConnection)
    assert got1 is not None and isinstance(got1.adapter, ServerConnection) and got1.leftover == request[:5]
    assert negotiate(None, b"PRI", http1=ServerConnection, http2=H2ServerConnection) is None


def _head(headers: list[tuple[bytes, bytes]], method: bytes = b"GET", version: bytes = b"1.1") -> RequestHead:
    return RequestHead(1, method, b"/chat", headers, version)


def test_websocket_upgrade_detection() -> None:
    ok = [(b"host", b"a"), (b"upgrade", b"WebSocket"), (b"connection", b"keep-alive, Upgrade")]
    assert is_websocket_upgrade(_head(ok))
    assert not is_websocket_upgrade(_head(ok, method=b"POST"))
    assert not is_websocket_upgrade(_head(ok, version=b"1.0"))
    assert not is_websocket_upgrade(_head([(b"upgrade", b"websocket")]))  # Connection lacks upgrade
    assert not is_websocket_upgrade(_head([(b"upgrade", b"h2c"), (b"connection", b"upgrade")]))
    split = [(b"upgrade", b"websocket"), (b"connection", b"keep-alive"), (b"connection", b"upgrade")]
    assert is_websocket_upgrade(_head(split))


def test_extended_connect_detection() -> None:
    head = RequestHead(3, b"CONNECT", b"/chat", [(b":protocol", b"websocket")], b"2")
    assert is_extended_connect(head)
    assert not is_extended_connect(RequestHead(3, b"CONNECT", b"a:443", [], b"2"))
    assert not is_extended_connect(head, b"webtransport")


def test_websocket_accepted_checks_status_upgrade_and_accept_key() -> None:
    key = b"dGhlIHNhbXBsZSBub25jZQ=="
    good = ResponseHead(1, 101, [(b"upgrade", b"websocket"), (b"sec-websocket-accept", accept_key(key))])
    assert websocket_accepted(good, key)
    assert websocket_accepted(good, None)
    assert not websocket_accepted(good, b"AAAAAAAAAAAAAAAAAAAAAA==")
    assert not websocket_accepted(ResponseHead(1, 200, good.headers), key)
    assert not websocket_accepted(ResponseHead(1, 101, [(b"upgrade", b"h2c")]), None)


def test_header_tokens() -> None:
    assert header_tokens([(b"connection", b" Upgrade ,,keep-alive"), (b"x", b"y")], b"connection") == {
        b"upgrade",
        b"keep-alive",
    }
