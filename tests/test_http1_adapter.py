"""The HTTP/1.1 adapters, tested purely: bytes in, events out (no sockets, no event loop).

Every parsing case is fed twice, in one chunk and byte by byte, and must give the same events
(or the same error): the adapter may not depend on how TCP happened to segment the stream.
"""

from __future__ import annotations

from typing import Literal

import pytest

from a3s_gateway.runtime.events import (
    Body,
    ConnectionClosed,
    EndOfBody,
    Event,
    InformationalResponse,
    RequestHead,
    Reset,
    ResponseHead,
    Trailers,
)
from a3s_gateway.runtime.protocols import ClientConnection, ProtocolError, ServerConnection, render_response
from a3s_gateway.runtime.protocols.http1_fast import FastClientConnection, FastServerConnection


@pytest.fixture(autouse=True, params=["h11", "fast"])
def adapters(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs against both HTTP/1.1 adapters (protocols/http1.py and http1_fast.py)."""
    if request.param == "fast":
        monkeypatch.setitem(globals(), "ServerConnection", FastServerConnection)
        monkeypatch.setitem(globals(), "ClientConnection", FastClientConnection)


def _merge(events: list[Event]) -> list[Event]:
    """Join adjacent Body events (byte-by-byte feeding splits the data, not the meaning)."""
    out: list[Event] = []
    for ev in events:
        if isinstance(ev, Body) and out and isinstance(out[-1], Body):
            out[-1] = Body(1, bytes(out[-1].data) + bytes(ev.data))
        elif isinstance(ev, Body):
            out.append(Body(1, bytes(ev.data)))
        else:
            out.append(ev)
    return out


def feed(data: bytes, *, bytewise: bool, **limits: int) -> list[Event]:
    server = ServerConnection(**limits)
    if not bytewise:
        return _merge(server.receive_data(data))
    events: list[Event] = []
    for i in range(len(data)):
        events += server.receive_data(data[i : i + 1])
    return _merge(events)


def both(data: bytes, **limits: int) -> list[Event]:
    whole = feed(data, bytewise=False, **limits)
    assert feed(data, bytewise=True, **limits) == whole
    return whole


def refused(data: bytes, **limits: int) -> int:
    statuses = set()
    for bytewise in (False, True):
        with pytest.raises(ProtocolError) as info:
            feed(data, bytewise=bytewise, **limits)
        statuses.add(info.value.status)
    assert len(statuses) == 1, statuses
    return statuses.pop()


# --------------------------------------------------------------------------- parsing requests


def test_simple_get() -> None:
    events = both(b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-Thing: 1\r\n\r\n")
    assert events == [
        RequestHead(
            1, b"GET", b"/a?b=1", [(b"host", b"example.com"), (b"x-thing", b"1")], authority=b"example.com"
        ),
        EndOfBody(1),
    ]


def test_content_length_body() -> None:
    events = both(b"POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
    head = events[0]
    assert isinstance(head, RequestHead) and head.has_body
    assert events[1:] == [Body(1, b"hello"), EndOfBody(1)]


def test_chunked_body_with_trailers() -> None:
    data = b"POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-T: 1\r\n\r\n"
    events = both(data)
    assert isinstance(events[0], RequestHead) and events[0].has_body
    assert events[1:] == [Body(1, b"abcde"), Trailers(1, [(b"x-t", b"1")]), EndOfBody(1)]


def test_bare_lf_line_endings_are_accepted_and_normalised() -> None:
    events = both(b"GET / HTTP/1.1\nHost: h\n\n")
    assert isinstance(events[0], RequestHead) and events[0].headers == [(b"host", b"h")]


def test_absolute_form_target_becomes_origin_form_and_sets_host() -> None:
    events = both(b"GET http://api.test:8080/v1/x?q=1 HTTP/1.1\r\nHost: other\r\n\r\n")
    head = events[0]
    assert isinstance(head, RequestHead)
    assert (head.target, head.authority, head.headers) == (
        b"/v1/x?q=1",
        b"api.test:8080",
        [(b"host", b"api.test:8080")],
    )


def test_options_asterisk() -> None:
    head = both(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")[0]
    assert isinstance(head, RequestHead) and head.target == b"*"


def test_eof_between_requests_and_mid_body() -> None:
    server = ServerConnection()
    assert server.receive_data(b"") == [ConnectionClosed()]
    server = ServerConnection()
    events = server.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
    assert events[1:] == [Body(1, b"abc")]
    assert server.receive_data(b"") == [Reset(1)]


def test_a_message_ended_after_the_peer_closed_leaves_the_connection_closing() -> None:
    # h11: the side that ends its message once the other side has closed goes to MUST_CLOSE.
    server = ServerConnection()
    server.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert server.receive_data(b"") == [ConnectionClosed()]
    server.send(ResponseHead(1, 200, [(b"content-length", b"2")]))
    assert server.send_body(b"ok") + server.send(EndOfBody(1)) == b"ok"
    assert not server.our_message_done and not server.can_reuse
    client = ClientConnection()
    client.send(RequestHead(1, b"POST", b"/", [(b"host", b"h"), (b"content-length", b"2")]))
    client.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert client.receive_data(b"") == [ConnectionClosed()]
    assert client.send_body(b"ok") + client.send(EndOfBody(1)) == b"ok"
    assert not client.our_message_done and not client.can_reuse


# --------------------------------------------------------------------------- smuggling shapes -> 400

SMUGGLING = {
    "cl-then-te": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    "te-then-cl": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    "te-chunked-identity": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
    "te-twice": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
    "te-in-http10": b"POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
    "cl-differing": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
    "cl-list-differing": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\n",
    "cl-signed": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\n",
    "cl-negative": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
    "cl-hex": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n",
    "space-before-colon": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n  folded\r\n\r\n",
    "obs-fold-tab": b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n\tfolded\r\n\r\n",
    "obs-fold-te": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
    "nul-in-value": b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n",
    "cr-in-value": b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n",
    "two-hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "no-host": b"GET / HTTP/1.1\r\nX: y\r\n\r\n",
    "space-in-target": b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",
    "relative-target": b"GET a/b HTTP/1.1\r\nHost: h\r\n\r\n",
    "userinfo-target": b"GET http://user@evil/ HTTP/1.1\r\nHost: h\r\n\r\n",
    "bad-version": b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
    "leading-space-header": b"GET / HTTP/1.1\r\n Host: h\r\n\r\n",
    "chunk-size-huge": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\n",
    "chunk-size-bad": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
}


@pytest.mark.parametrize("data", SMUGGLING.values(), ids=SMUGGLING.keys())
def test_smuggling_shapes_are_refused_with_400(data: bytes) -> None:
    assert refused(data) == 400


UNIMPLEMENTED = {
    "te-gzip": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
    "te-gzip-chunked": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    "te-xchunked": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n",
    "te-param": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: foo;q=1, chunked\r\n\r\n",
}


@pytest.mark.parametrize("data", UNIMPLEMENTED.values(), ids=UNIMPLEMENTED.keys())
def test_unknown_transfer_codings_are_501(data: bytes) -> None:
    """RFC 9112 §6.1: a coding we do not implement is 501; chunked twice or not last stays 400."""
    assert refused(data) == 501


def test_empty_lines_before_a_request_line_are_dropped() -> None:
    server = ServerConnection()
    assert server.receive_data(b"\r\n") == []
    assert server.receive_data(b"\n\r") == []
    events = server.receive_data(
        b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n\r\n\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    assert isinstance(events[0], RequestHead) and events[0].target == b"/"
    server.send(ResponseHead(1, 200, [(b"content-length", b"0")]))
    server.send(EndOfBody(1))
    [second, *_] = server.start_next_cycle()
    assert isinstance(second, RequestHead) and second.target == b"/2"


@pytest.mark.parametrize(
    ("policy", "names"),
    [
        ("delete", [b"host", b"x-a"]),
        ("keep", [b"host", b"x-a", b"x_a"]),
    ],
)
def test_underscore_policy(policy: Literal["delete", "keep"], names: list[bytes]) -> None:
    data = b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX_A: 2\r\nContent_Length: 9\r\n\r\n"
    [head, *_] = ServerConnection(underscore_headers=policy).receive_data(data)
    assert isinstance(head, RequestHead) and [n for n, _ in head.headers] == names
    with pytest.raises(ProtocolError) as info:
        ServerConnection(underscore_headers="reject").receive_data(data)
    assert info.value.status == 400


def test_a_valid_message_after_a_refused_one_is_never_parsed() -> None:
    server = ServerConnection()
    with pytest.raises(ProtocolError):
        server.receive_data(SMUGGLING["cl-then-te"] + b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n")
    with pytest.raises(ProtocolError):
        server.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")


# --------------------------------------------------------------------------- limits


def test_request_line_limit_is_414() -> None:
    assert refused(b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: h\r\n\r\n", max_request_line=100) == 414
    # Still incomplete (no CRLF yet) but already too long: refused without waiting for the rest.
    with pytest.raises(ProtocolError) as info:
        ServerConnection(max_request_line=100).receive_data(b"GET /" + b"a" * 200)
    assert info.value.status == 414


def test_request_line_at_the_limit_passes() -> None:
    line = b"GET /" + b"a" * (100 - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"
    assert len(line) == 100
    assert isinstance(both(line + b"\r\nHost: h\r\n\r\n", max_request_line=100)[0], RequestHead)


def test_header_bytes_limit_is_431() -> None:
    data = b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"v" * 500 + b"\r\n\r\n"
    assert refused(data, max_header_bytes=200) == 431
    with pytest.raises(ProtocolError) as info:
        ServerConnection(max_header_bytes=200).receive_data(data[:400])
    assert info.value.status == 431


def test_header_count_limit_is_431() -> None:
    many = b"".join(b"X-%d: v\r\n" % i for i in range(20))
    assert refused(b"GET / HTTP/1.1\r\nHost: h\r\n" + many + b"\r\n", max_header_count=10) == 431
    assert isinstance(
        both(b"GET / HTTP/1.1\r\nHost: h\r\n" + many + b"\r\n", max_header_count=21)[0], RequestHead
    )


def test_limits_apply_to_each_pipelined_request() -> None:
    server = ServerConnection(max_request_line=100)
    small = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    events = server.receive_data(small + b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert isinstance(events[0], RequestHead)
    server.send(ResponseHead(1, 200, [(b"content-length", b"0")]))
    server.send(EndOfBody(1))
    with pytest.raises(ProtocolError) as info:
        server.start_next_cycle()
    assert info.value.status == 414


# --------------------------------------------------------------------------- keep-alive, pipelining, 100-continue


def _respond(server: ServerConnection, body: bytes = b"ok") -> bytes:
    out = server.send(ResponseHead(1, 200, [(b"content-length", b"%d" % len(body))]))
    return out + server.send(Body(1, body)) + server.send(EndOfBody(1))


def test_pipelined_requests_come_out_one_cycle_at_a_time() -> None:
    server = ServerConnection()
    events = server.receive_data(
        b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTT"
    )
    assert [getattr(e, "target", None) for e in events] == [b"/1", None]
    _respond(server)
    assert server.can_reuse
    assert [getattr(e, "target", None) for e in server.start_next_cycle()] == [b"/2", None]
    _respond(server)
    assert server.start_next_cycle() == []
    assert [getattr(e, "target", None) for e in server.receive_data(b"P/1.1\r\nHost: h\r\n\r\n")] == [
        b"/3",
        None,
    ]


@pytest.mark.parametrize("protocol", [b"h2c", b"websocket"])
def test_a_declined_upgrade_keeps_the_connection(protocol: bytes) -> None:
    """h11 holds a request that asked to switch protocols in MIGHT_SWITCH_PROTOCOL, not DONE,
    until the answer; it is complete all the same, and an answer other than 101 declines the
    switch (RFC 9110 §7.8): keep-alive goes on, and the next request is read as HTTP/1.1."""
    server = ServerConnection()
    events = server.receive_data(
        b"GET /1 HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: %b\r\n\r\n"
        b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n" % protocol
    )
    assert [getattr(e, "target", None) for e in events] == [b"/1", None]
    assert server.their_message_done  # the caller does not add Connection: close
    assert b"connection: close" not in _respond(server).lower()
    assert server.can_reuse
    assert [getattr(e, "target", None) for e in server.start_next_cycle()] == [b"/2", None]


def test_connection_close_ends_keep_alive() -> None:
    server = ServerConnection()
    server.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    out = _respond(server)
    assert b"connection: close" in out.lower()
    assert not server.can_reuse


def test_http10_closes_unless_keep_alive() -> None:
    server = ServerConnection()
    server.receive_data(b"GET / HTTP/1.0\r\n\r\n")
    _respond(server)
    assert not server.can_reuse


def test_unknown_length_response_is_chunked() -> None:
    server = ServerConnection()
    server.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    out = server.send(ResponseHead(1, 200, [(b"content-type", b"text/event-stream")]))
    assert b"transfer-encoding: chunked" in out.lower()
    assert server.send(Body(1, b"data: 1\n\n")) == b"9\r\ndata: 1\n\n\r\n"
    assert server.send(EndOfBody(1)) == b"0\r\n\r\n"


def test_expect_100_continue() -> None:
    server = ServerConnection()
    server.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    assert server.waiting_for_100_continue
    assert server.send(InformationalResponse(1, 100, [])).startswith(b"HTTP/1.1 100 Continue\r\n")
    assert not server.waiting_for_100_continue
    assert server.receive_data(b"hi") == [Body(1, b"hi"), EndOfBody(1)]


@pytest.mark.parametrize(
    ("status", "reason", "line"),
    [
        (200, b"", b"HTTP/1.1 200 OK\r\n"),
        (503, b"", b"HTTP/1.1 503 Service Unavailable\r\n"),
        (299, b"", b"HTTP/1.1 299 \r\n"),  # unregistered: no phrase to give
        (200, b"Fine", b"HTTP/1.1 200 Fine\r\n"),  # one of its own is kept
    ],
)
def test_status_line_carries_the_registered_reason_phrase(status: int, reason: bytes, line: bytes) -> None:
    server = ServerConnection()
    server.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    out = server.send(ResponseHead(1, status, [(b"content-length", b"0")], reason=reason))
    assert out.startswith(line)


def test_response_overrunning_its_content_length_is_an_error() -> None:
    server = ServerConnection()
    server.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    server.send(ResponseHead(1, 200, [(b"content-length", b"2")]))
    with pytest.raises(ProtocolError):
        server.send(Body(1, b"too long"))


@pytest.mark.parametrize("framing", [(b"content-length", b"1000"), (b"transfer-encoding", b"chunked")])
def test_a_response_to_head_sends_no_body_whatever_its_head_says(framing: tuple[bytes, bytes]) -> None:
    server = ServerConnection()
    server.receive_data(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n")
    wire = server.send(ResponseHead(1, 200, [framing]))
    assert bytes(framing[0]) in wire.lower() and wire.endswith(b"\r\n\r\n")
    # The body a handler produced anyway is dropped: the response still ends cleanly.
    assert server.send(Body(1, b"x" * 1000)) == b"" and server.send_body(b"more") == b""
    assert server.send(EndOfBody(1)) == b""
    assert server.can_reuse
    assert isinstance(server.start_next_cycle()[0], RequestHead)  # the pipelined GET is next
    server.send(ResponseHead(1, 200, [(b"content-length", b"2")]))
    assert server.send(Body(1, b"ok")) == b"ok"


def test_a_client_sees_bytes_a_server_sent_past_its_response() -> None:
    client = ClientConnection()
    client.send(RequestHead(1, b"HEAD", b"/", [(b"host", b"h")]))
    client.send(EndOfBody(1))
    events = client.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody")
    assert [type(e) for e in events] == [ResponseHead, EndOfBody]
    assert client.can_reuse and not client.start_clean_cycle()  # 4 body bytes answer no request
    assert client.can_reuse  # nothing changed
    client = ClientConnection()
    client.send(RequestHead(1, b"GET", b"/", [(b"host", b"h")]))
    client.send(EndOfBody(1))
    client.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody")
    assert client.start_clean_cycle() and not client.can_reuse  # reset: ready for a request
    client.send(RequestHead(1, b"GET", b"/", [(b"host", b"h")]))


def test_render_response_is_a_complete_closing_message() -> None:
    out = render_response(ResponseHead(1, 431, [(b"content-type", b"text/plain")]), b"no")
    assert out.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    client = ClientConnection()
    client.send(RequestHead(1, b"GET", b"/", [(b"host", b"h")]))
    events = client.receive_data(out)
    assert isinstance(events[0], ResponseHead) and events[0].status == 431
    assert events[1:] == [Body(1, b"no"), EndOfBody(1)]
    assert not client.can_reuse


# --------------------------------------------------------------------------- client adapter, and client wired to server


def test_client_wired_to_server_round_trip() -> None:
    client, server = ClientConnection(), ServerConnection()
    head = RequestHead(1, b"POST", b"/v1/chat", [(b"host", b"up"), (b"transfer-encoding", b"chunked")])
    wire = client.send(head) + client.send(Body(1, b"{}")) + client.send(EndOfBody(1))
    events = _merge(server.receive_data(wire))
    assert events[0] == RequestHead(1, b"POST", b"/v1/chat", head.headers, authority=b"up", has_body=True)
    assert events[1:] == [Body(1, b"{}"), EndOfBody(1)]
    wire = server.send(ResponseHead(1, 200, [(b"content-type", b"text/event-stream")]))
    wire += server.send(Body(1, b"data: a\n\n")) + server.send(EndOfBody(1))
    events = _merge(client.receive_data(wire))
    assert isinstance(events[0], ResponseHead) and events[0].status == 200
    assert events[1:] == [Body(1, b"data: a\n\n"), EndOfBody(1)]
    assert client.can_reuse and server.can_reuse
    assert client.start_clean_cycle() and server.start_next_cycle() == []


def test_client_sees_informational_then_final_response() -> None:
    client = ClientConnection()
    client.send(RequestHead(1, b"GET", b"/", [(b"host", b"h")]))
    events = client.receive_data(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
    )
    assert [type(e) for e in events] == [InformationalResponse, ResponseHead, EndOfBody]


def test_client_close_delimited_body_and_head_request() -> None:
    client = ClientConnection()
    client.send(RequestHead(1, b"GET", b"/", [(b"host", b"h")]))
    assert _merge(client.receive_data(b"HTTP/1.1 200 OK\r\n\r\npartial"))[1:] == [Body(1, b"partial")]
    assert client.receive_data(b"") == [EndOfBody(1), ConnectionClosed()]
    client = ClientConnection()
    client.send(RequestHead(1, b"HEAD", b"/", [(b"host", b"h")]))
    events = client.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n")
    assert [type(e) for e in events] == [ResponseHead, EndOfBody]


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 two hundred\r\n\r\n",
        b"NOT HTTP\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_malformed_upstream_responses_are_502(data: bytes) -> None:
    client = ClientConnection()
    client.send(RequestHead(1, b"GET", b"/", [(b"host", b"h")]))
    with pytest.raises(ProtocolError) as info:
        client.receive_data(data)
    assert info.value.status == 502


def test_client_eof_mid_body_is_a_reset() -> None:
    client = ClientConnection()
    client.send(RequestHead(1, b"GET", b"/", [(b"host", b"h")]))
    client.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    assert client.receive_data(b"") == [Reset(1)]
