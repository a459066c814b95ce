"""The FTP server's replies on a control connection, with its passive-mode replies picked out.

Sans-IO: `FtpReplies.receive_data(bytes)` returns what to send on to the client, in order: bytes
to pass through untouched, and a `Passive` for each `227` (PASV, RFC 959 section 4.2) or `229`
(EPSV, RFC 2428 section 3) reply, which the caller rewrites to name an address and port of its
own (`Passive.render`). Replies are split at CRLF; only a line that begins with `227 ` or `229 `
is held back until its end, everything else goes on as it arrives. A line longer than
`MAX_LINE` is passed through as it is (no passive reply is that long).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["FtpReplies", "Passive"]  # and MAX_LINE, the longest line held

MAX_LINE = 1024

# h1,h2,h3,h4,p1,p2 anywhere in the reply text (RFC 1123 section 4.1.2.6: the parentheses are
# not required, so the numbers are searched for).
_PASV = re.compile(rb"(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})")
# (<d><d><d>port<d>) with any delimiter d in the printable range (RFC 2428 section 3).
_EPSV = re.compile(rb"\(([\x21-\x7e])\1\1(\d{1,5})\1\)")


@dataclass(frozen=True, slots=True)
class Passive:
    """A passive-mode reply: the port the server listens on for the data connection."""

    line: bytes  # the whole reply line, CRLF included
    extended: bool  # 229 (EPSV: a port only) rather than 227 (PASV: an IPv4 address and a port)
    port: int
    span: tuple[int, int]  # where the address (227) or the port (229) is in `line`

    def render(self, host: str, port: int) -> bytes:
        """The reply, naming `host` (IPv4, for 227) and `port` instead of the server's."""
        if self.extended:
            text = b"%d" % port
        else:
            text = b",".join(host.encode().split(b".")) + b",%d,%d" % (port >> 8, port & 0xFF)
        start, end = self.span
        return self.line[:start] + text + self.line[end:]


class FtpReplies:
    """Splits a server's control stream into pass-through bytes and passive replies."""

    def __init__(self) -> None:
        self._held = b""  # the start of a line that may be a passive reply
        self._at_line_start = True

    def receive_data(self, data: bytes) -> list[bytes | Passive]:
        out: list[bytes | Passive] = []
        data = self._held + data
        self._held = b""
        while data:
            if not self._at_line_start:
                end = data.find(b"\n")
                if end < 0:
                    out.append(data)
                    return out
                out.append(data[: end + 1])
                data = data[end + 1 :]
                self._at_line_start = True
                continue
            if len(data) < 4 and (b"227 ".startswith(data) or b"229 ".startswith(data)):
                self._held = data  # too short to tell yet
                return out
            if not data.startswith((b"227 ", b"229 ")):
                self._at_line_start = False
                continue
            end = data.find(b"\n")
            if end < 0:
                if len(data) > MAX_LINE:
                    out.append(data)
                    self._at_line_start = False
                else:
                    self._held = data
                return out
            line, data = data[: end + 1], data[end + 1 :]
            out.append(_passive(line) or line)
        return out


def _passive(line: bytes) -> Passive | None:
    if line.startswith(b"227 "):
        found = _PASV.search(line)
        if found is None:
            return None
        numbers = [int(n) for n in found.groups()]
        if any(n > 255 for n in numbers):
            return None
        return Passive(line, False, numbers[4] * 256 + numbers[5], found.span())
    found = _EPSV.search(line)
    if found is None or not 0 < int(found.group(2)) < 65536:
        return None
    return Passive(line, True, int(found.group(2)), found.span(2))
