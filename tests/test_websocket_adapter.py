"""The WebSocket adapter, tested purely: a backend-facing adapter (client=True) wired to a
client-facing one (client=False), plus hand-made frames for what a correct peer never sends."""

from __future__ import annotations

import struct

import pytest

from a3s_gateway.runtime.events import (
    WebSocketClose,
    WebSocketEvent,
    WebSocketMessage,
    WebSocketPing,
    WebSocketPong,
)
from a3s_gateway.runtime.protocols.websocket import WebSocketConnection, WebSocketError, accept_key


def pair(**limits: int) -> tuple[WebSocketConnection, WebSocketConnection]:
    """(browser side as seen from a client adapter, gateway's client-facing server adapter)."""
    return WebSocketConnection(client=True), WebSocketConnection(client=False, **limits)


def through(
    sender: WebSocketConnection, receiver: WebSocketConnection, *events: WebSocketEvent
) -> list[WebSocketEvent]:
    data = b"".join(sender.send(ev) for ev in events)
    return receiver.receive_data(data)


def masked(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A client frame with a zero mask (so the payload reads as-is)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + b"\x00\x00\x00\x00" + payload


def test_accept_key_matches_rfc_6455_example() -> None:
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_text_binary_ping_pong_both_ways() -> None:
    client, server = pair()
    assert through(client, server, WebSocketMessage(1, "héllo"), WebSocketMessage(1, b"\x00\xff")) == [
        WebSocketMessage(1, "héllo"),
        WebSocketMessage(1, b"\x00\xff"),
    ]
    assert through(server, client, WebSocketPing(1, b"p"), WebSocketMessage(1, "back")) == [
        WebSocketPing(1, b"p"),
        WebSocketMessage(1, "back"),
    ]
    assert through(client, server, WebSocketPong(1, b"p")) == [WebSocketPong(1, b"p")]


def test_fragmented_messages_keep_their_boundaries() -> None:
    client, server = pair()
    got = through(
        client,
        server,
        WebSocketMessage(1, "a", final=False),
        WebSocketPing(1, b"between"),  # control frames may interleave (RFC 6455 §5.4)
        WebSocketMessage(1, "b", final=True),
    )
    assert got == [
        WebSocketMessage(1, "a", False),
        WebSocketPing(1, b"between"),
        WebSocketMessage(1, "b", True),
    ]


def test_large_message_streams_in_pieces() -> None:
    client, server = pair()
    data = client.send(WebSocketMessage(1, b"m" * 1_000_000))
    pieces: list[WebSocketEvent] = []
    for i in range(0, len(data), 65536):
        pieces += server.receive_data(data[i : i + 65536])
    assert len(pieces) > 1
    assert all(isinstance(p, WebSocketMessage) for p in pieces)
    assert [p.final for p in pieces if isinstance(p, WebSocketMessage)] == [False] * (len(pieces) - 1) + [
        True
    ]
    assert b"".join(p.data for p in pieces if isinstance(p, WebSocketMessage)) == b"m" * 1_000_000  # type: ignore[misc]


def test_close_handshake_relayed_end_to_end() -> None:
    """Browser -> gateway -> backend and back: each side completes its own handshake."""
    browser, front = pair()
    back, backend = pair()
    (close,) = through(browser, front, WebSocketClose(1, 4000, "bye"))
    assert close == WebSocketClose(1, 4000, "bye")
    assert through(back, backend, close) == [WebSocketClose(1, 4000, "bye")]
    (answer,) = through(backend, back, WebSocketClose(1, 4000, "bye"))
    assert back.closed
    assert through(front, browser, answer) == [WebSocketClose(1, 4000, "bye")]
    assert front.closed and browser.closed and backend.closed
    assert front.send(WebSocketMessage(1, "late")) == b""


def test_close_without_status_is_relayed_as_such() -> None:
    client, server = pair()
    (close,) = through(client, server, WebSocketClose(1, 1005))
    assert close == WebSocketClose(1, 1005)
    data = server.send(close)
    assert data == b"\x88\x00"  # an empty close frame: 1005 never goes on the wire


def test_eof_is_1006_and_1006_is_never_sent() -> None:
    client, server = pair()
    assert server.receive_data(b"") == [WebSocketClose(1, 1006)]
    assert server.closed and server.receive_data(b"more") == []
    assert client.send(WebSocketClose(1, 1006)) == b""
    assert client.closed


def test_message_size_limit_counts_across_fragments() -> None:
    client, server = pair(max_message_size=1000)
    through(client, server, WebSocketMessage(1, b"x" * 600, final=False))
    with pytest.raises(WebSocketError) as info:
        through(client, server, WebSocketMessage(1, b"x" * 600, final=True))
    assert info.value.code == 1009
    assert client.receive_data(info.value.data) == [WebSocketClose(1, 1009, "message too big")]


def test_size_limit_resets_per_message_and_counts_utf8_bytes() -> None:
    client, server = pair(max_message_size=10)
    for _ in range(5):
        assert through(client, server, WebSocketMessage(1, "0123456789")) == [
            WebSocketMessage(1, "0123456789")
        ]
    with pytest.raises(WebSocketError):
        through(client, server, WebSocketMessage(1, "ééééé é"))  # 7 characters, 13 bytes


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x81\x02hi", 1002),  # unmasked frame from a client (RFC 6455 §5.1)
        (masked(0x1, b"\xff\xfe"), 1007),  # invalid UTF-8 in a text message (§8.1)
        (masked(0x3, b""), 1002),  # reserved opcode
        (masked(0x9, b"p" * 126), 1002),  # control frame over 125 bytes (§5.5)
        (masked(0x0, b"c"), 1002),  # continuation with nothing to continue
        (masked(0x8, b"\x03\xed"), 1002),  # close code 1005 on the wire
    ],
    ids=["unmasked", "bad-utf8", "reserved-opcode", "big-control", "orphan-continuation", "close-1005"],
)
def test_protocol_violations_raise_with_a_close_frame(data: bytes, code: int) -> None:
    client, server = WebSocketConnection(client=True), WebSocketConnection(client=False)
    with pytest.raises(WebSocketError) as info:
        server.receive_data(data)
    assert info.value.code == code
    (close,) = client.receive_data(info.value.data)
    assert isinstance(close, WebSocketClose) and close.code == code
    assert server.closed


def test_masked_frames_from_a_server_are_refused() -> None:
    client = WebSocketConnection(client=True)
    with pytest.raises(WebSocketError):
        client.receive_data(masked(0x1, b"hi"))


def test_byte_by_byte_delivery() -> None:
    client, server = pair()
    data = client.send(WebSocketMessage(1, "split")) + client.send(WebSocketClose(1, 1000, "done"))
    got: list[WebSocketEvent] = []
    for i in range(len(data)):
        got += server.receive_data(data[i : i + 1])
    text = "".join(ev.data for ev in got if isinstance(ev, WebSocketMessage))  # type: ignore[misc]
    assert text == "split" and got[-1] == WebSocketClose(1, 1000, "done")


def test_stream_id_is_carried_for_rfc_8441_streams() -> None:
    client, server = (
        WebSocketConnection(client=True, stream_id=7),
        WebSocketConnection(client=False, stream_id=7),
    )
    assert through(client, server, WebSocketMessage(7, "x")) == [WebSocketMessage(7, "x")]
