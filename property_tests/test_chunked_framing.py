"""The strict chunked-body framing (runtime/protocols/chunked.py) as invariants.

* Split invariance: any bytes give the same verdict (refused, or how many bytes belong to the
  body and whether it ended) in one piece or split anywhere: the answer never depends on how
  the client's writes were cut into reads.
* Never different from h11: whenever the framing and h11 both accept a complete body, they
  end it at the same byte, so the two parsers that read the body can never disagree on where
  the next request starts. h11 may still refuse what the framing passed (the syntax of a trailer
  field is h11's to judge, and so is a size over 20 hex digits): refused either way. Every
  well-formed body is accepted by both.
"""

from __future__ import annotations

import itertools

import h11
from hypothesis import example, given
from hypothesis import strategies as st

from a3s_gateway.runtime.protocols.chunked import ChunkedFraming, FramingError

_FRAGMENTS = [
    b"5\r\nhello\r\n", b"3\r\nabc\r\n", b"0\r\n", b"0\r\n\r\n", b"\r\n", b"\n", b"\r", b";a=b", b';q="x y"',
    b'"', b"\\", b";", b"=", b" ", b"\t", b"x-t: 1\r\n", b"3", b"abc", b"ff", b"0", b"Z", b"\x00",
    b"8000000000000000", b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
]  # fmt: skip

chunkish = st.lists(st.sampled_from(_FRAGMENTS) | st.binary(max_size=6), max_size=16).map(b"".join)
_ext = st.sampled_from([b"", b";a", b";a=b", b'; q = "x\\"y"', b";a;b=c", b" ", b"\t"])
_chunk = st.tuples(st.binary(min_size=1, max_size=20), _ext).map(
    lambda c: b"%x%s\r\n%s\r\n" % (len(c[0]), c[1], c[0])
)
_trailers = st.lists(st.sampled_from([b"x-t: 1\r\n", b"a: b c\r\n"]), max_size=2).map(b"".join)
_valid = st.tuples(st.lists(_chunk, max_size=4), _ext, _trailers, st.binary(max_size=8)).map(
    lambda b: b"".join(b[0]) + b"0" + b[1] + b"\r\n" + b[2] + b"\r\n" + b[3]
)


def _mutate(body: bytes, at: int, byte: int) -> bytes:
    if not body:
        return body
    at %= len(body)
    return body[:at] + bytes([byte]) + body[at + 1 :]


# Valid bodies (followed by what may be the next request), and the same with one byte changed.
bodies = _valid | st.builds(_mutate, _valid, st.integers(0, 400), st.sampled_from(b'\r\n ;="\\x0\t\x00'))
cuts = st.lists(st.integers(min_value=0, max_value=400), max_size=6)

_HEAD = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"


def _verdict(data: bytes, cut_at: list[int]) -> tuple[str, int, bool]:
    framing = ChunkedFraming()
    consumed = 0
    bounds = [0, *sorted(c % (len(data) + 1) for c in cut_at), len(data)]
    try:
        for lo, hi in itertools.pairwise(bounds):
            if hi > lo and not framing.done:
                consumed += framing.feed(data[lo:hi])
    except FramingError:
        return "refused", 0, False
    return "ok", consumed, framing.done


@given(chunkish | bodies, cuts)
@example(b"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n", [3, 11])
@example(b'5;a="b\\"c"\r\nhello\r\n0\r\nx-t: 1\r\n\r\n', [1, 2, 3, 4, 5, 6])
def test_the_verdict_does_not_depend_on_how_bytes_arrive(data: bytes, cut_at: list[int]) -> None:
    assert _verdict(data, cut_at) == _verdict(data, [])
    assert _verdict(data, cut_at) == _verdict(data, list(range(len(data))))


def _h11_end(data: bytes) -> bytes | None:
    """What h11 leaves after the chunked body `data` starts (None: it refused, or wants more)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(_HEAD + data)
    try:
        while (ev := conn.next_event()) is not h11.PAUSED and ev is not h11.NEED_DATA:
            if isinstance(ev, h11.EndOfMessage):
                return bytes(conn.trailing_data[0])
    except h11.RemoteProtocolError:
        pass
    return None


@given(bodies | chunkish)
@example(b"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n")
@example(b'5 \r\nhello\r\n0;x="\\""\r\nx-t: 1\r\n\r\nrest')
@example(b"0\r\n;-t: 1\r\n\r\n")  # a trailer field only h11 refuses
def test_where_both_accept_a_body_they_end_it_at_the_same_byte(data: bytes) -> None:
    verdict, consumed, done = _verdict(data, [])
    rest = _h11_end(data)
    if verdict == "ok" and done and rest is not None:
        assert rest == data[consumed:]
    if rest is not None:  # h11 ended the body: we never let it run on as still incomplete
        assert verdict == "refused" or done


@given(_valid)
def test_every_well_formed_body_is_accepted_by_both_alike(data: bytes) -> None:
    verdict, consumed, done = _verdict(data, [])
    assert (verdict, done) == ("ok", True)
    assert _h11_end(data) == data[consumed:]
