"""Server-Sent Events, sans-IO: bytes in, events out; events in, bytes out.

The parser follows the WHATWG event-stream rules that matter to LLM APIs: lines end with LF,
CRLF or CR; a blank line dispatches the event; `data` lines accumulate (joined with LF); `event`
names it; lines starting with `:` are comments; an event without data is not dispatched. It
keeps only the unfinished tail between `feed` calls, so an event is returned as soon as its
blank line has arrived, and several events in one chunk all come out of that one call.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["SseEvent", "SseParser", "encode_event", "split_events"]

# An event ends at a blank line (WHATWG HTML §9.2.6: LF, CRLF or CR line ends).
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


class SseEvent(NamedTuple):
    """One dispatched event: its name ("" when the stream named none) and its data."""

    event: str
    data: str


class SseParser:
    """Feed it chunks as they arrive; it returns the events they complete."""

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail = b""

    @property
    def pending(self) -> bool:
        """Whether part of an event has arrived without its terminating blank line."""
        return bool(self._tail.strip())

    def feed(self, data: bytes) -> list[SseEvent]:
        buf = self._tail + data if self._tail else data
        if b"\r" in buf:
            # A CR at the very end may be the first half of a CRLF: keep it for the next chunk.
            hold = buf.endswith(b"\r")
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if hold:
                buf = buf[:-1]
                blocks = buf.split(b"\n\n")
                self._tail = blocks.pop() + b"\r"
                return _events(blocks)
        blocks = buf.split(b"\n\n")
        self._tail = blocks.pop()
        return _events(blocks)


def _events(blocks: list[bytes]) -> list[SseEvent]:
    out = []
    for block in blocks:
        event = _event(block)
        if event is not None:
            out.append(event)
    return out


def _event(block: bytes) -> SseEvent | None:
    if block.startswith(b"data: ") and b"\n" not in block:  # the usual one-line event, fast
        return SseEvent("", block[6:].decode("utf-8", "replace"))
    name = b""
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value
    if not data:
        return None
    return SseEvent(name.decode("utf-8", "replace"), b"\n".join(data).decode("utf-8", "replace"))


def split_events(data: bytes) -> tuple[list[bytes], bytes]:
    """`data` cut after each event's blank line, its bytes unchanged (for those who pass events
    on or store them as they came, rather than read their fields): the complete events, and the
    unfinished tail (b"" when `data` ends with an event)."""
    events, end = [], 0
    for match in _EVENT_END.finditer(data):
        events.append(data[end : match.end()])
        end = match.end()
    return events, data[end:]


def encode_event(data: str, event: str = "") -> bytes:
    """One event in wire form. `data` must hold no line break (compact JSON never does)."""
    if event:
        return f"event: {event}\ndata: {data}\n\n".encode()
    return f"data: {data}\n\n".encode()
