"""The adapter's fast construction of outgoing heads is invisible: same bytes, same refusals.

protocols/http1.py builds the h11 events for the heads it sends without h11's per-field
normalisation when C-level scans prove that work would change nothing (`_ready_headers`).
For any head, sending it through either adapter (h11's, and http1_fast.py's, which writes the
usual heads itself) must give exactly the bytes h11's own construction gives (with the
adapter's wire-safety scan deciding `_parsed`, as before the fast path), or a ProtocolError
exactly when h11 refuses it.
"""

from __future__ import annotations

from http import HTTPStatus

import h11
from hypothesis import example, given
from hypothesis import strategies as st

from a3s_gateway.runtime.events import RequestHead, ResponseHead
from a3s_gateway.runtime.protocols import ClientConnection, ProtocolError, ServerConnection
from a3s_gateway.runtime.protocols.http1 import _safe_fields
from a3s_gateway.runtime.protocols.http1_fast import FastClientConnection, FastServerConnection

_NAMES = [
    b"host", b"content-length", b"transfer-encoding", b"x-a", b"Accept", b"x y", b"", b"x\xff",
    b"connection", b"te", b"user-agent", b"x-request-id",
]  # fmt: skip
_VALUES = [
    b"", b"0", b"12", b" 12", b"1,1", b"1, 2", b"chunked", b"Chunked", b"gzip", b"a\rb", b"a\nb",
    b"a\x00b", b"\tpadded ", b"x" * 30, b"1" * 21, b"example.com:8080", b"\xe9t\xe9",
]  # fmt: skip
# Mostly the usual heads, which the fast adapter writes itself when its scans allow (a
# Content-Length, Host first, no Connection), and the near misses of those scans.
_USUAL_NAMES = [
    b"host",
    b"content-length",
    b"x-a",
    b"accept",
    b"connection",
    b"transfer-encoding",
    b"upgrade",
]
_USUAL_VALUES = [b"0", b"12", b"x", b"chunked", b"close", b"keep-alive", b"websocket"]
fields = st.lists(st.tuples(st.sampled_from(_NAMES), st.sampled_from(_VALUES)), max_size=8) | st.lists(
    st.tuples(st.sampled_from(_USUAL_NAMES), st.sampled_from(_USUAL_VALUES)), max_size=5
)
methods = st.sampled_from([b"GET", b"POST", b"M-SEARCH", b"G T", b"", b"get", b"CONNECT"])
targets = st.sampled_from([b"/", b"/v1/chat?x=1", b"*", b"/a b", b"/\x7f", b"/%20"])


def _h11_request(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes | None:
    try:
        event = h11.Request(method=method, target=target, headers=headers, _parsed=_safe_fields(headers))
        return h11.Connection(h11.CLIENT).send(event) or b""
    except h11.LocalProtocolError:
        return None


_Adapter = ClientConnection | ServerConnection | FastClientConnection | FastServerConnection
# The requests a response answers: its framing and the connection's fate depend on them.
_REQUESTS = [
    b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
]


def _ours(adapter: _Adapter, event: RequestHead | ResponseHead) -> bytes | None:
    try:
        return adapter.send(event)
    except ProtocolError:
        return None


@given(methods, targets, fields)
@example(b"GET", b"/", [(b"content-length", b"0"), (b"host", b"h")])  # Host goes first
def test_request_heads_match_h11(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    expected = _h11_request(method, target, headers)
    assert _ours(ClientConnection(), RequestHead(1, method, target, list(headers))) == expected
    assert _ours(FastClientConnection(), RequestHead(1, method, target, list(headers))) == expected


@given(
    st.sampled_from([200, 204, 304, 404, 999, 1000, 199]),
    st.sampled_from([b"", b"OK"]),
    fields,
    st.sampled_from(_REQUESTS),
)
@example(200, b"", [(b"content-length", b"0"), (b"host", b"h")], _REQUESTS[0])  # Host goes first
@example(200, b"", [(b"content-length", b"0")], _REQUESTS[2])  # Connection: close to HTTP/1.0
@example(200, b"", [(b"content-length", b"0")], _REQUESTS[3])  # and to a closing request
@example(200, b"", [(b"content-length", b"12")], _REQUESTS[1])  # no body to HEAD
# When h11 rebuilds the fields (chunked framing, Connection: close) it checks every value's
# grammar; the old Connection values it drops are not checked, the new ones are.
@example(200, b"", [(b"x-a", b" 12")], _REQUESTS[0])
@example(200, b"", [(b"content-length", b"0"), (b"x-a", b"\tpadded ")], _REQUESTS[3])
@example(200, b"", [(b"content-length", b"0"), (b"connection", b"a\x0bb")], _REQUESTS[3])
@example(200, b"", [(b"content-length", b"0"), (b"connection", b" x")], _REQUESTS[3])
@example(200, b"", [(b"content-length", b" 1"), (b"x-a", b"1")], _REQUESTS[2])
def test_response_heads_match_h11(
    status: int, reason: bytes, headers: list[tuple[bytes, bytes]], asked: bytes
) -> None:
    def request(server: _Adapter) -> _Adapter:
        server.receive_data(asked)
        return server

    raw = h11.Connection(h11.SERVER)
    raw.receive_data(asked)
    raw.next_event()
    raw.next_event()
    try:  # a response without a reason of its own goes out with the registered phrase
        phrase = HTTPStatus(status).phrase.encode()
    except ValueError:
        phrase = b""
    try:
        event = h11.Response(
            status_code=status, headers=headers, reason=reason or phrase, _parsed=_safe_fields(headers)
        )
        expected: bytes | None = raw.send(event)
    except h11.LocalProtocolError:
        expected = None
    assert (
        _ours(request(ServerConnection()), ResponseHead(1, status, list(headers), reason=reason)) == expected
    )
    assert (
        _ours(request(FastServerConnection()), ResponseHead(1, status, list(headers), reason=reason))
        == expected
    )
