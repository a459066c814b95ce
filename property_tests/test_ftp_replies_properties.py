"""The FTP control-stream splitter: whatever the bytes and however they are split, nothing is
lost, added or reordered (passive replies rendered with the server's own address and port give
back the server's bytes), and it never raises."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from a3s_gateway.runtime.protocols.ftp_replies import FtpReplies, Passive

_LINES = st.sampled_from(
    [
        b"227 Entering passive mode (10,0,4,10,117,48).\r\n",
        b"229 Entering extended passive mode (|||30001|).\r\n",
        b"227 (300,1,1,1,1,1)\r\n",
        b"220 ready\r\n",
        b"22",
        b"\r\n",
        b"229 ",
    ]
)
_STREAMS = st.lists(st.one_of(_LINES, st.binary(max_size=40)), max_size=12).map(b"".join)


@settings(max_examples=400)
@given(_STREAMS, st.lists(st.integers(0, 400), max_size=8))
def test_nothing_is_lost_added_or_reordered(stream: bytes, cuts: list[int]) -> None:
    stream += b"\n"  # a complete last line: nothing is left held
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    replies, out = FtpReplies(), []
    for start, end in itertools.pairwise(bounds):
        for item in replies.receive_data(stream[start:end]):
            out.append(item.line if isinstance(item, Passive) else item)
    assert b"".join(out) == stream


@given(st.binary(max_size=300))
def test_a_rendered_reply_names_the_new_port(data: bytes) -> None:
    for item in FtpReplies().receive_data(b"227 x (10,0,4,10,117,48)" + data + b"\r\n"):
        if isinstance(item, Passive):
            assert item.port == 117 * 256 + 48
            assert b"(192,0,2,1,156,64)" in item.render("192.0.2.1", 40000)
