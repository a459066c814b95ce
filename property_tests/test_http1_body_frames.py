"""The adapter's body framing without h11's state machine is invisible: same bytes, same state.

`_Adapter.send_body` frames a chunk itself while h11 is in SEND_BODY with a Content-Length or
chunked writer (a Data event changes no h11 state). For any head and any sequence of chunks,
our bytes and h11's must match chunk by chunk, a chunk past the declared length must fail on
both (and leave both in ERROR), and the end of the message must come out the same.
"""

from __future__ import annotations

from collections.abc import Callable

import h11
from hypothesis import given
from hypothesis import strategies as st

from a3s_gateway.runtime.events import EndOfBody, RequestHead, ResponseHead
from a3s_gateway.runtime.protocols import ClientConnection, ProtocolError, ServerConnection

chunks = st.lists(st.binary(max_size=40), max_size=8)
# None: chunked; an int: Content-Length (often shorter or longer than what is sent).
framings = st.one_of(st.none(), st.integers(min_value=0, max_value=120))


def _framing_headers(length: int | None) -> list[tuple[bytes, bytes]]:
    if length is None:
        return [(b"transfer-encoding", b"chunked")]
    return [(b"content-length", str(length).encode())]


def _frames(send_chunk: Callable[[bytes], bytes], pieces: list[bytes]) -> list[bytes | None]:
    """What each chunk serialises to; None for the chunk that is refused (and nothing after)."""
    out: list[bytes | None] = []
    for piece in pieces:
        try:
            out.append(send_chunk(piece))
        except (ProtocolError, h11.LocalProtocolError):
            out.append(None)
            break
    return out


def _end(send_end: Callable[[], bytes]) -> bytes | None:
    try:
        return send_end()
    except (ProtocolError, h11.LocalProtocolError):
        return None


def _same_as_h11(
    ours: ServerConnection | ClientConnection, theirs: h11.Connection, pieces: list[bytes]
) -> None:
    """Chunk by chunk, then the end of the message: same bytes (or refusals) and same states."""
    assert _frames(ours.send_body, pieces) == _frames(lambda d: theirs.send(h11.Data(data=d)) or b"", pieces)
    assert ours._conn.our_state is theirs.our_state
    assert _end(lambda: ours.send(EndOfBody(1))) == _end(lambda: theirs.send(h11.EndOfMessage()) or b"")
    assert ours._conn.our_state is theirs.our_state


@given(framings, chunks)
def test_response_bodies_match_h11(length: int | None, pieces: list[bytes]) -> None:
    headers = _framing_headers(length)
    theirs = h11.Connection(h11.SERVER)
    theirs.receive_data(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    theirs.next_event()
    theirs.send(h11.Response(status_code=200, headers=headers))
    ours = ServerConnection()
    ours.receive_data(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    ours.send(ResponseHead(1, 200, headers))
    _same_as_h11(ours, theirs, pieces)


@given(framings, chunks)
def test_request_bodies_match_h11(length: int | None, pieces: list[bytes]) -> None:
    headers = [(b"host", b"backend"), *_framing_headers(length)]
    theirs = h11.Connection(h11.CLIENT)
    theirs.send(h11.Request(method=b"POST", target=b"/", headers=headers))
    ours = ClientConnection()
    ours.send(RequestHead(1, b"POST", b"/", headers))
    _same_as_h11(ours, theirs, pieces)
