"""The two HTTP/1.1 adapters are one adapter: h11's (protocols/http1.py) and llhttp's (http1_fast.py).

For any byte stream, split at any points, both must produce the same events (method, target,
headers in order, body bytes, trailers), refuse the same inputs with the same status, report
the same connection state (keep-alive or close, message done, response started) and write the
same bytes for the same responses. The same holds for the upstream side reading responses
to GET, HEAD and POST, including 1xx, 204, 304 and close-delimited bodies. The inputs are drawn
from the shapes the reliability work refuses (request smuggling, limits, chunked framing, see
tests/test_http1_adapter.py and tests/test_client_framing.py), well-formed messages, pipelines
of them, their mutations and plain noise.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from a3s_gateway.runtime.events import Body, EndOfBody, Event, RequestHead, ResponseHead, Trailers
from a3s_gateway.runtime.protocols import ProtocolError
from a3s_gateway.runtime.protocols.http1 import ClientConnection, ServerConnection
from a3s_gateway.runtime.protocols.http1_fast import FastClientConnection, FastServerConnection

_POST = b"POST / HTTP/1.1\r\nHost: h\r\n"
_CHUNKED = _POST + b"Transfer-Encoding: chunked\r\n\r\n"
# Whole messages: the cases of the reliability tests, and ordinary requests around them.
_REQUESTS = [
    b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, CLOSE\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET http://api.test:8080/v1/x?q=1 HTTP/1.1\r\nHost: other\r\n\r\n",
    b"GET http://api.test HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.1\nHost: h\n\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX-A:  padded \t\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX-Ctl: a\x01b\x7fc\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX-Obs: \xe9t\xe9\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nx_user: 1\r\nX-User: 2\r\n\r\n",
    b"FOO /x HTTP/1.1\r\nHost: h\r\n\r\n",
    b"get / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n",
    b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
    _POST + b"Content-Length: 5\r\n\r\nhello",
    _POST + b"Content-Length: 0\r\n\r\n",
    _POST + b"Content-Length: 005\r\n\r\nhello",
    _POST + b"Content-Length: 5, 5\r\n\r\nhello",
    _POST + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    _POST + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
    _POST + b"Transfer-Encoding: Chunked\r\n\r\n0\r\n\r\n",
    _CHUNKED + b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
    _CHUNKED + b"3 \r\nabc\r\n0\r\n\r\n",
    _CHUNKED + b'3;a="q"\r\nabc\r\n0\r\nContent-Length: x\r\n\r\n',
    _CHUNKED + b"0\r\nTransfer-Encoding: gzip\r\n\r\n",
    # Smuggling (tests/test_http1_adapter.py: SMUGGLING, UNIMPLEMENTED).
    _POST + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    _POST + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    _POST + b"Transfer-Encoding: chunked, identity\r\n\r\n",
    _POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
    _POST + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\n",
    _POST + b"Content-Length: 3, 4\r\n\r\n",
    _POST + b"Content-Length: +3\r\n\r\n",
    _POST + b"Content-Length: -1\r\n\r\n",
    _POST + b"Content-Length: 0x10\r\n\r\n",
    _POST + b"Content-Length: 123456789012345678901\r\n\r\n",
    _POST + b"Transfer-Encoding : chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n  folded\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n\tfolded\r\n\r\n",
    _POST + b"Transfer-Encoding:\r\n chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\nX: y\r\n\r\n",
    b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET a/b HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET http://user@evil/ HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\r\n Host: h\r\n\r\n",
    b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n",
    _POST + b"Transfer-Encoding: gzip\r\n\r\n",
    _POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n",
    _POST + b"Transfer-Encoding: foo;q=1, chunked\r\n\r\n",
    b"GET /" + b"a" * 80 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X: y\r\n" * 10 + b"\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"y" * 300 + b"\r\n\r\n",
]
# Chunked bodies (tests/test_client_framing.py: MALFORMED_CHUNKS), after _CHUNKED.
_CHUNKS = [
    b"8000000000000000\r\n", b"1" + b"0" * 40 + b"\r\n", b"zz\r\n", b"5x\r\nhello\r\n", b"0x5\r\nhello\r\n",
    b"\r\nhello\r\n", b"5\nhello\r\n0\r\n\r\n", b"5;a=b\nhello\r\n0\r\n\r\n", b"5\rhello\r\n",
    b"5\r\nhello\n0\r\n\r\n", b"5\r\nhelloXX0\r\n\r\n", b"5\r\nhello!\r\n0\r\n\r\n", b"5;a b\r\nhello\r\n0\r\n\r\n",
    b"5;\x01\r\nhello\r\n0\r\n\r\n", b"5;=v\r\nhello\r\n0\r\n\r\n", b"5;a=\r\nhello\r\n0\r\n\r\n",
    b"5 a=b\r\nhello\r\n0\r\n\r\n", b"5 ;a=b\r\nhello\r\n0\r\n\r\n", b"5;a=b/c\r\nhello\r\n0\r\n\r\n",
    b'5;a="b\r\nhello\r\n0\r\n\r\n', b"0\n\r\n", b"0\r\n\n", b"0\r\nx-t: 1\n\r\n", b"0\r\nx-t: 1\r\n folded\r\n\r\n",
    b"zz", b"10000000000000000", b"5\nhel", b"5\r\nhello\n", b"5;a b", b'5;a="\x01', b"5\r\nhello\r\n0\r\n\r\n",
    b"0\r\nX-A: 1\r\nX-B: \x01\r\n\r\n",
]  # fmt: skip
_NOISE_FRAGMENTS = [b"\r\n", b"\n", b"\r", b" ", b":", b"\x00", b"X: y\r\n", b"Host: h\r\n", b"\t", b"\xff"]

requests = st.sampled_from(_REQUESTS) | st.sampled_from(_CHUNKS).map(lambda body: _CHUNKED + body)


@st.composite
def _mutated(draw: st.DrawFn, messages: st.SearchStrategy[bytes], fragments: list[bytes]) -> bytes:
    """A message with a few bytes replaced, inserted or dropped."""
    data = bytearray(draw(messages))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "drop", "replace"]))
        piece = draw(st.sampled_from(fragments) | st.binary(min_size=1, max_size=3))
        if action == "insert":
            data[at:at] = piece
        elif action == "drop":
            del data[at : at + len(piece)]
        else:
            data[at : at + len(piece)] = piece
    return bytes(data)


streams = st.lists(requests | _mutated(requests, _NOISE_FRAGMENTS), min_size=1, max_size=3).map(b"".join)
cuts = st.lists(st.integers(min_value=0, max_value=600), max_size=8)
responses = st.tuples(
    st.sampled_from([200, 204, 304, 404, 101]),
    st.sampled_from(
        [
            [(b"content-length", b"2")],
            [(b"transfer-encoding", b"chunked")],
            [],
            [(b"Connection", b"keep-alive"), (b"content-length", b"2")],
            [(b"connection", b"close")],
            [(b"content-length", b"2"), (b"transfer-encoding", b"chunked")],
            [(b"x-bad", b"a\r\nb")],
        ]
    ),
    st.sampled_from([[b"ok"], [], [b"o", b"k"], [b"too long"]]),
    st.sampled_from([None, [(b"x-t", b"1")]]),
)


def _split(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted(p % (len(data) + 1) for p in points), len(data)]
    return [data[lo:hi] for lo, hi in itertools.pairwise(bounds) if hi > lo]


def _normal(events: list[Event]) -> list[object]:
    """Events as comparable values: body bytes as bytes (h11 may hand out bytearrays)."""
    return [("body", bytes(ev.data)) if type(ev) is Body else ev for ev in events]


def _attempt(log: list[object], action: Callable[[], Any]) -> bool:
    """Run one adapter call, logging its result or its refusal; False once it refused."""
    try:
        result = action()
    except ProtocolError as exc:
        log.append(("refused", exc.status))
        return False
    log.append(_normal(result) if isinstance(result, list) else result)
    return True


def _server_state(server: ServerConnection | FastServerConnection) -> tuple[bool, ...]:
    return (
        server.can_reuse,
        server.their_message_done,
        server.our_message_done,
        server.response_started,
        server.waiting_for_100_continue,
        server.switched,
    )


def _respond(server: Any, log: list[object], response: tuple[Any, ...]) -> bool:
    status, headers, body, trailers = response
    if status == 101:
        from a3s_gateway.runtime.events import InformationalResponse

        return _attempt(log, lambda: server.send(InformationalResponse(1, 101, headers)))
    steps: list[Callable[[], Any]] = [lambda: server.send(ResponseHead(1, status, headers))]
    steps += [lambda piece=piece: server.send_body(piece) for piece in body]
    steps.append(lambda: server.send(Trailers(1, trailers) if trailers else EndOfBody(1)))
    return all(_attempt(log, step) for step in steps)


def _run_server(
    make: Callable[[], Any], data: bytes, points: list[int], response: tuple[Any, ...], eof: bool
) -> list[object]:
    """Feed `data` in pieces, answer each complete request and cycle on; the whole transcript."""
    server = make()
    log: list[object] = []
    pieces = [*_split(data, points), *([b""] if eof else [])]
    for piece in pieces:
        if not _attempt(log, lambda piece=piece: server.receive_data(piece)):
            return log
        log.append(_server_state(server))
        while server.their_message_done and not server.response_started:
            if not _respond(server, log, response):
                return log
            log.append(_server_state(server))
            if not server.can_reuse:
                return log
            if not _attempt(log, server.start_next_cycle):
                return log
            log.append(_server_state(server))
    return log


def _limited(cls: type) -> Callable[[], Any]:
    return lambda: cls(max_request_line=64, max_header_bytes=256, max_header_count=8)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=streams, points=cuts, response=responses, eof=st.booleans())
@example(data=_REQUESTS[0], points=[], response=(200, [], [b"ok"], None), eof=False)
def test_servers_agree_however_the_bytes_are_split(
    data: bytes, points: list[int], response: tuple[Any, ...], eof: bool
) -> None:
    reference = _run_server(_limited(ServerConnection), data, points, response, eof)
    assert _run_server(_limited(FastServerConnection), data, points, response, eof) == reference


def _few_fields(cls: type) -> Callable[[], Any]:
    # Long heads within the size limits and over the field count (the fast adapter's quick path
    # takes any head shorter than both size limits, and must still count its fields).
    return lambda: cls(max_request_line=4096, max_header_bytes=4096, max_header_count=2)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=streams, points=cuts, response=responses, eof=st.booleans())
@example(
    data=b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n",
    points=[],
    response=(200, [], [], None),
    eof=False,
)
def test_servers_agree_on_the_field_count(
    data: bytes, points: list[int], response: tuple[Any, ...], eof: bool
) -> None:
    reference = _run_server(_few_fields(ServerConnection), data, points, response, eof)
    assert _run_server(_few_fields(FastServerConnection), data, points, response, eof) == reference


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=streams, response=responses)
def test_servers_agree_byte_by_byte(data: bytes, response: tuple[Any, ...]) -> None:
    points = list(range(len(data)))
    reference = _run_server(_limited(ServerConnection), data, points, response, True)
    assert _run_server(_limited(FastServerConnection), data, points, response, True) == reference


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.binary(max_size=200), points=cuts)
def test_servers_agree_on_noise(data: bytes, points: list[int]) -> None:
    response = (200, [(b"content-length", b"2")], [b"ok"], None)
    reference = _run_server(_limited(ServerConnection), data, points, response, True)
    assert _run_server(_limited(FastServerConnection), data, points, response, True) == reference


# --------------------------------------------------------------------------- the upstream side

_STATUS_LINES = [
    b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200\r\n", b"HTTP/1.1 200 \r\n", b"HTTP/1.0 200 OK\r\n",
    b"HTTP/1.1 204 No Content\r\n", b"HTTP/1.1 304 Not Modified\r\n", b"HTTP/1.1 100 Continue\r\n",
    b"HTTP/1.1 103 Early Hints\r\n", b"HTTP/1.1 101 Switching Protocols\r\n", b"HTTP/1.1 404 Not\x01Found\r\n",
    b"HTTP/2.0 200 OK\r\n", b"HTTP/1.1 two hundred\r\n", b"NOT HTTP\r\n", b"HTTP/1.1 999 X\r\n",
    b"HTTP/1.1 200 OK\n",
]  # fmt: skip
_RESPONSE_FIELDS = [
    b"Content-Length: 3\r\n", b"content-length: 0\r\n", b"Content-Length: 3, 3\r\n", b"Content-Length: 3\r\n" * 2,
    b"Content-Length: 4\r\n", b"Transfer-Encoding: chunked\r\n", b"Transfer-Encoding: gzip\r\n",
    b"Connection: close\r\n", b"Connection: keep-alive\r\n", b"Server: x\r\n", b"X-A:  b \r\n", b"X: a\x01\r\n",
    b"Link: </a>\r\n", b" folded\r\n", b"X-N: y\n", b"Bad Name: 1\r\n",
]  # fmt: skip
_RESPONSE_BODIES = [
    b"", b"abc", b"abcdef", b"3\r\nabc\r\n0\r\n\r\n", b"3;ext\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", b"zz\r\n",
    b"3\r\nabcXX", b"fffffffffffffffffff\r\n", b"0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
]  # fmt: skip


@st.composite
def _response_streams(draw: st.DrawFn) -> bytes:
    parts: list[bytes] = []
    for _ in range(draw(st.integers(1, 2))):
        parts.append(draw(st.sampled_from(_STATUS_LINES)))
        parts += draw(st.lists(st.sampled_from(_RESPONSE_FIELDS), max_size=4))
        parts.append(b"\r\n")
        parts.append(draw(st.sampled_from(_RESPONSE_BODIES)))
    return b"".join(parts)


response_streams = _response_streams() | _mutated(_response_streams(), _NOISE_FRAGMENTS)
requests_up = st.tuples(
    st.sampled_from([b"GET", b"HEAD", b"POST", b"CONNECT"]),
    st.sampled_from(
        [
            [(b"host", b"h")],
            [(b"host", b"h"), (b"connection", b"close")],
            [(b"host", b"h"), (b"content-length", b"2")],
            [(b"host", b"h"), (b"transfer-encoding", b"chunked")],
            [(b"host", b"h"), (b"upgrade", b"websocket"), (b"connection", b"upgrade")],
            [(b"Host", b"h"), (b"X-A", b"1")],
            [(b"host", b"a\nb")],
            [],
        ]
    ),
)


def _client_state(client: ClientConnection | FastClientConnection) -> tuple[bool, ...]:
    return (client.can_reuse, client.their_message_done, client.our_message_done, client.switched)


def _run_client(
    make: Callable[[], Any], request: tuple[Any, ...], data: bytes, points: list[int], eof: bool
) -> list[object]:
    client = make()
    log: list[object] = []
    method, headers = request
    sends: list[Callable[[], Any]] = [lambda: client.send(RequestHead(1, method, b"/", headers))]
    sends += [lambda: client.send_body(b"ok"), lambda: client.send(EndOfBody(1))]
    for step in sends:
        if not _attempt(log, step):
            break
    log.append(_client_state(client))
    for piece in [*_split(data, points), *([b""] if eof else [])]:
        if not _attempt(log, lambda piece=piece: client.receive_data(piece)):
            return log
        log.append(_client_state(client))
    log.append(client.start_clean_cycle())
    log.append(client.trailing_data if client.switched else None)
    return log


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(request=requests_up, data=response_streams, points=cuts, eof=st.booleans())
# A request that closes, answered by a keep-alive head whose body is still coming: our side
# must already be MUST_CLOSE (not DONE) between the head and the end of the body.
@example(
    request=(b"GET", [(b"host", b"h"), (b"connection", b"close")]),
    data=b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
    points=[40],
    eof=False,
)
def test_clients_agree_however_the_bytes_are_split(
    request: tuple[Any, ...], data: bytes, points: list[int], eof: bool
) -> None:
    reference = _run_client(ClientConnection, request, data, points, eof)
    assert _run_client(FastClientConnection, request, data, points, eof) == reference


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(request=requests_up, data=response_streams)
def test_clients_agree_byte_by_byte(request: tuple[Any, ...], data: bytes) -> None:
    points = list(range(len(data)))
    reference = _run_client(ClientConnection, request, data, points, True)
    assert _run_client(FastClientConnection, request, data, points, True) == reference


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(request=requests_up, data=st.binary(max_size=200), points=cuts)
def test_clients_agree_on_noise(request: tuple[Any, ...], data: bytes, points: list[int]) -> None:
    reference = _run_client(ClientConnection, request, data, points, True)
    assert _run_client(FastClientConnection, request, data, points, True) == reference
