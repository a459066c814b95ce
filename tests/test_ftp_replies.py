"""The FTP control-stream splitter (runtime/protocols/ftp_replies.py): passive replies picked out
and rewritten, everything else passed through untouched, however the bytes are split."""

from __future__ import annotations

import pytest

from a3s_gateway.runtime.protocols.ftp_replies import MAX_LINE, FtpReplies, Passive

STREAM = (
    b"220 pyftpdlib ready.\r\n"
    b"230 Login successful.\r\n"
    b"227 Entering passive mode (10,0,4,10,117,48).\r\n"
    b"150 File status okay. About to open data connection.\r\n"
    b"229 Entering extended passive mode (|||30001|).\r\n"
    b"226 Transfer complete.\r\n"
)
REWRITTEN = (
    b"220 pyftpdlib ready.\r\n"
    b"230 Login successful.\r\n"
    b"227 Entering passive mode (192,0,2,1,156,64).\r\n"
    b"150 File status okay. About to open data connection.\r\n"
    b"229 Entering extended passive mode (|||40001|).\r\n"
    b"226 Transfer complete.\r\n"
)


def rewrite(chunks: list[bytes]) -> tuple[bytes, list[int]]:
    """What the client sees with the gateway at 192.0.2.1 and the server's port + 10,000."""
    replies, out, ports = FtpReplies(), [], []
    for chunk in chunks:
        for item in replies.receive_data(chunk):
            if isinstance(item, Passive):
                ports.append(item.port)
                out.append(item.render("192.0.2.1", item.port + 10000))
            else:
                out.append(item)
    return b"".join(out), ports


def test_passive_replies_are_rewritten_and_the_rest_passes_through() -> None:
    assert rewrite([STREAM]) == (REWRITTEN, [30000, 30001])


def test_any_split_gives_the_same_bytes() -> None:
    assert rewrite([STREAM[i : i + 1] for i in range(len(STREAM))]) == (REWRITTEN, [30000, 30001])
    for cut in range(len(STREAM)):
        assert rewrite([STREAM[:cut], STREAM[cut:]]) == (REWRITTEN, [30000, 30001])


def test_other_lines_go_on_as_they_arrive() -> None:
    """Only a line that may be a passive reply waits for its end."""
    replies = FtpReplies()
    assert replies.receive_data(b"150 Opening data conn") == [b"150 Opening data conn"]
    assert replies.receive_data(b"ection.\r\n22") == [b"ection.\r\n"]  # "22" may start a 227
    assert replies.receive_data(b"6 Done.\r\n") == [b"226 Done.\r\n"]


@pytest.mark.parametrize(
    "line",
    [
        b"227 Entering passive mode (10,0,4,300,117,48).\r\n",  # not an address
        b"227 No numbers here.\r\n",
        b"229 Entering extended passive mode (|||70000|).\r\n",  # not a port
        b"229 Entering extended passive mode (|x|30001|).\r\n",  # mixed delimiters
        b"2270 Not a passive reply (10,0,4,10,117,48).\r\n",
    ],
)
def test_replies_that_name_no_address_pass_through(line: bytes) -> None:
    assert rewrite([line]) == (line, [])


def test_an_overlong_line_is_not_held() -> None:
    replies = FtpReplies()
    long = b"227 " + b"x" * MAX_LINE
    assert replies.receive_data(long) == [long]
    assert replies.receive_data(b"(10,0,4,10,117,48)\r\n") == [b"(10,0,4,10,117,48)\r\n"]
