"""Robustness of the HTTP/2 adapters as an invariant (STYLE.md practice 12).

After a valid connection preface, any bytes either produce events or raise `ProtocolError`
(an `H2ProtocolError` carrying a GOAWAY), never any other exception, and whether the bytes come
in one chunk or split at arbitrary points changes neither whether it fails nor the error code.
Inputs mix noise with frames built from real frame headers, valid and corrupted HPACK blocks,
so the parser is pushed well past the frame layer.
"""

from __future__ import annotations

import itertools

import hpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from a3s_gateway.runtime.events import Event, RequestHead, ResponseHead
from a3s_gateway.runtime.protocols import ProtocolError
from a3s_gateway.runtime.protocols.http2 import H2ClientConnection, H2ServerConnection, H2Settings

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_LIMITS = H2Settings(max_concurrent_streams=4, max_header_list_size=2048, max_continuations=3, max_resets=3)


def _frame(kind: int, flags: int, sid: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + sid.to_bytes(4, "big") + payload


_REQUEST = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b":authority", b"a")]
_RESPONSE = [(b":status", b"200")]
_EXTRA = st.sampled_from(
    [(b"x-a", b"1"), (b"te", b"trailers"), (b"content-length", b"3"), (b"cookie", b"a=b"), (b"X-Bad", b"1")]
)


@st.composite
def _block(draw: st.DrawFn, base: list[tuple[bytes, bytes]]) -> bytes:
    """A fresh-encoder HPACK block, sometimes truncated or corrupted."""
    block = bytes(hpack.Encoder().encode(base + draw(st.lists(_EXTRA, max_size=3))))
    mode = draw(st.integers(0, 5))
    if mode == 0:
        return block[: draw(st.integers(0, len(block)))]
    if mode == 1:
        i = draw(st.integers(0, len(block) - 1))
        return block[:i] + bytes([draw(st.integers(0, 255))]) + block[i + 1 :]
    return block


def _frames(base: list[tuple[bytes, bytes]]) -> st.SearchStrategy[bytes]:
    sid = st.sampled_from([0, 1, 2, 3, 5, 7, 0x7FFFFFFF])
    flags = st.sampled_from([0, 1, 4, 5, 8, 0x20, 0x25, 0xFF])
    payload = st.binary(max_size=40) | _block(base)
    kind = st.integers(0, 10) | st.just(0xFA)
    one = st.builds(_frame, kind, flags, sid, payload)
    return st.lists(one | st.binary(max_size=12), max_size=10).map(b"".join)


def _run(adapter_factory: type, prefix: bytes, data: bytes, cuts: list[int]) -> tuple[str, object]:
    adapter = adapter_factory(_LIMITS)
    adapter.data_to_send()
    events: list[Event] = []
    try:
        adapter.receive_data(prefix)
        bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
        for lo, hi in itertools.pairwise(bounds):
            if hi > lo:
                events += adapter.receive_data(data[lo:hi], 0.0)
            adapter.data_to_send()
    except ProtocolError as exc:
        return "error", getattr(exc, "error_code", None)
    return "ok", [type(ev).__name__ for ev in events if isinstance(ev, RequestHead | ResponseHead)]


_SERVER_PREFIX = PREFACE + _frame(4, 0, 0, b"")
_CLIENT_PREFIX = _frame(4, 0, 0, b"")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400) | _frames(_REQUEST), st.lists(st.integers(0, 10_000), max_size=6))
def test_server_parses_or_raises_protocol_error(data: bytes, cuts: list[int]) -> None:
    whole = _run(H2ServerConnection, _SERVER_PREFIX, data, [])
    split = _run(H2ServerConnection, _SERVER_PREFIX, data, cuts)
    assert whole[0] == split[0]
    if whole[0] == "error":
        assert whole == split


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400) | _frames(_RESPONSE), st.lists(st.integers(0, 10_000), max_size=6))
def test_client_parses_or_raises_protocol_error(data: bytes, cuts: list[int]) -> None:
    """An upstream that answers garbage costs a 502, never a crash."""

    def with_requests(settings: H2Settings) -> H2ClientConnection:
        client = H2ClientConnection(settings)
        for _ in range(3):
            sid = client.open_stream()
            client.send(RequestHead(sid, b"GET", b"/", [(b"host", b"h")]))
        return client

    whole = _run(with_requests, _CLIENT_PREFIX, data, [])  # type: ignore[arg-type]
    split = _run(with_requests, _CLIENT_PREFIX, data, cuts)  # type: ignore[arg-type]
    assert whole[0] == split[0]
