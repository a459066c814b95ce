"""Robustness of the HTTP/1.1 adapters as an invariant (STYLE.md practice 12).

For any bytes: the server adapter either produces events or raises `ProtocolError` (never any
other exception), and it does the same whether the bytes arrive in one chunk, byte by byte, or
split at arbitrary points. The same holds for the client adapter reading a response. Inputs mix
pure noise with mutated well-formed messages, so the parser is pushed past the request line.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from a3s_gateway.runtime.events import Body, EndOfBody, Event, RequestHead, ResponseHead
from a3s_gateway.runtime.protocols import ClientConnection, ProtocolError, ServerConnection

_FRAGMENTS = [
    b"GET / HTTP/1.1\r\n", b"POST /x HTTP/1.1\r\n", b"GET http://h/ HTTP/1.1\r\n", b"HTTP/1.0\r\n",
    b"Host: h\r\n", b"Content-Length: 3\r\n", b"Content-Length: 0\r\n", b"Transfer-Encoding: chunked\r\n",
    b"Connection: close\r\n", b"Expect: 100-continue\r\n", b" folded\r\n", b"X: y\r\n", b"\r\n", b"\n",
    b"abc", b"3\r\nabc\r\n", b"0\r\n\r\n", b"ffffffff\r\n", b":", b" ", b"\x00", b"\r",
]  # fmt: skip
_STATUS_FRAGMENTS = [
    b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 100 Continue\r\n", b"HTTP/1.1 204 No Content\r\n", b"HTTP/1.0 200\r\n",
    b"Content-Length: 3\r\n", b"Transfer-Encoding: chunked\r\n", b"Connection: close\r\n", b"\r\n",
    b"abc", b"3\r\nabc\r\n", b"0\r\n\r\n", b"zz\r\n", b"\x00", b" ",
]  # fmt: skip

noise = st.binary(max_size=300)
requestish = st.lists(st.sampled_from(_FRAGMENTS) | noise.map(lambda b: b[:8]), max_size=14).map(b"".join)
responseish = st.lists(st.sampled_from(_STATUS_FRAGMENTS) | noise.map(lambda b: b[:8]), max_size=12).map(
    b"".join
)
inputs = noise | requestish


def _normalise(events: list[Event]) -> list[object]:
    """Events with adjacent bodies joined: how the bytes were split may not change the meaning."""
    out: list[object] = []
    for ev in events:
        if isinstance(ev, Body):
            if out and isinstance(out[-1], bytes):
                out[-1] += bytes(ev.data)
            else:
                out.append(bytes(ev.data))
        else:
            out.append(ev)
    return out


def _run_server(data: bytes, cuts: list[int]) -> tuple[str, object]:
    server = ServerConnection(max_request_line=64, max_header_bytes=256, max_header_count=8)
    events: list[Event] = []
    try:
        bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
        for lo, hi in itertools.pairwise(bounds):
            events += server.receive_data(data[lo:hi]) if hi > lo else []
    except ProtocolError as exc:
        assert 400 <= exc.status < 600
        return "error", exc.status
    return "ok", _normalise(events)


def _run_client(data: bytes, cuts: list[int], method: bytes) -> tuple[str, object]:
    client = ClientConnection()
    client.send(RequestHead(1, method, b"/", [(b"host", b"h")]))
    events: list[Event] = []
    try:
        bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
        for lo, hi in itertools.pairwise(bounds):
            events += client.receive_data(data[lo:hi]) if hi > lo else []
        events += client.receive_data(b"")
    except ProtocolError as exc:
        assert exc.status == 502
        return "error", exc.status
    return "ok", _normalise(events)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(data=inputs, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6))
# Found by this test: a fold (400) seen byte by byte before the field count went over (431).
@example(data=b"!\n" + b"\x00\n" * 9 + b" \n", cuts=[])
def test_server_parses_or_raises_protocol_error_however_split(data: bytes, cuts: list[int]) -> None:
    whole = _run_server(data, [])
    assert _run_server(data, cuts) == whole
    assert _run_server(data, list(range(len(data)))) == whole  # byte by byte


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=noise | responseish,
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
    method=st.sampled_from([b"GET", b"HEAD", b"POST"]),
)
def test_client_parses_or_raises_protocol_error_however_split(
    data: bytes, cuts: list[int], method: bytes
) -> None:
    whole = _run_client(data, [], method)
    assert _run_client(data, cuts, method) == whole
    assert _run_client(data, list(range(len(data))), method) == whole


@settings(max_examples=200)
@given(st.lists(st.sampled_from(_FRAGMENTS), min_size=1, max_size=20).map(b"".join))
def test_server_keep_alive_cycles_never_crash(data: bytes) -> None:
    """Respond to whatever parses and cycle on: pipelined garbage still only yields ProtocolError."""
    server = ServerConnection()
    try:
        events = server.receive_data(data)
        for _ in range(10):
            if not any(isinstance(e, RequestHead) for e in events) or not server.their_message_done:
                return
            server.send(ResponseHead(1, 204, []))
            server.send(EndOfBody(1))
            if not server.can_reuse:
                return
            events = server.start_next_cycle()
    except ProtocolError:
        pass
