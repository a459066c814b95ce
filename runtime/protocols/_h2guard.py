"""A pre-parser of HTTP/2 frame headers that enforces what h2 leaves to its user.

h2 parses frames only once a whole frame has arrived and keeps no budget for frames that cost
work but carry no request. So every byte fed to the HTTP/2 adapter first passes through
`FrameGuard.scan`, which reads just the 9-byte frame headers (RFC 9113 §4.1: length 24 bits,
type, flags, reserved bit + stream id) and skips payloads, so its cost is per frame, not per byte:

* a frame longer than SETTINGS_MAX_FRAME_SIZE is refused when its header arrives (§4.2), where h2
  would first buffer the whole announced payload (up to 16 MiB);
* a header block may span at most `max_continuations` CONTINUATION frames and
  `max_header_block` bytes (the 2024 CONTINUATION flood: h2 allows 64 frames of any size);
* SETTINGS and PING frames that demand an answer, and frames that carry nothing (PRIORITY, empty
  DATA without END_STREAM: CVE-2019-9513/9518 shapes), are counted per time window; too many is
  a flood (CVE-2019-9512, -9515) answered with GOAWAY ENHANCE_YOUR_CALM.

GOAWAY frames are also lifted out of the byte stream and handed back parsed: h2 closes its whole
state machine on a received GOAWAY, which would forbid finishing the streams the peer promised
to complete (§6.8), so the adapter handles GOAWAY itself.

`ResetBudget` is the rapid-reset budget (CVE-2023-44487) of one connection: the streams a
client resets, per accepted streams and per unit of time. Time is a parameter (`now`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FrameGuard", "GoAway", "GuardError", "ResetBudget"]

_DATA, _HEADERS, _PRIORITY, _SETTINGS, _PUSH_PROMISE, _PING, _GOAWAY, _CONTINUATION = 0, 1, 2, 4, 5, 6, 7, 9
_END_STREAM = _ACK = 0x1
_END_HEADERS = 0x4
_PROTOCOL_ERROR, _FRAME_SIZE_ERROR, _ENHANCE_YOUR_CALM = 0x1, 0x6, 0xB
_PREFACE_LEN = 24


@dataclass(frozen=True, slots=True)
class GoAway:
    """A GOAWAY frame the peer sent (RFC 9113 §6.8)."""

    last_stream_id: int
    error_code: int
    debug: bytes = b""


class GuardError(Exception):
    """A limit was exceeded: the connection must end with GOAWAY `error_code`."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code


class FrameGuard:
    """Scans frame headers across reads; see the module docstring for what it enforces."""

    __slots__ = (
        "_block_bytes",
        "_block_frames",
        "_counts",
        "_goaway",
        "_goaway_len",
        "_head",
        "_in_block",
        "_limits",
        "_max_block",
        "_max_continuations",
        "_max_frame",
        "_preface",
        "_skip",
        "_window",
        "_window_start",
    )

    def __init__(
        self,
        *,
        server: bool,
        max_frame_size: int = 16384,
        max_continuations: int = 32,
        max_header_block: int = 81920,
        max_settings: int = 50,
        max_pings: int = 100,
        max_empty_frames: int = 1000,
        window: float = 10.0,
    ) -> None:
        self._preface = _PREFACE_LEN if server else 0  # bytes of the client preface to pass
        self._head = bytearray()  # a frame header split across reads
        self._skip = 0  # payload bytes of the current frame still to pass through
        self._goaway: bytearray | None = None  # the payload of a GOAWAY being collected
        self._goaway_len = 0
        self._max_frame = max_frame_size
        self._max_continuations = max_continuations
        self._max_block = max_header_block
        self._in_block = False
        self._block_frames = self._block_bytes = 0
        # Budgets per window: SETTINGS, PING, frames without content.
        self._limits = (max_settings, max_pings, max_empty_frames)
        self._counts = [0, 0, 0]
        self._window = window
        self._window_start = 0.0

    def scan(self, data: bytes, now: float = 0.0) -> list[bytes | GoAway | GuardError]:
        """Split `data` into bytes for h2 and parsed GOAWAYs, in order.

        A violated limit ends the list with its GuardError: the frames before it are still
        handed over, so that an earlier error h2 finds is the one reported, however the bytes
        were split into reads.
        """
        out: list[bytes | GoAway | GuardError] = []
        run = bytearray()
        view = memoryview(data)
        i, n = 0, len(data)
        if self._preface:
            i = min(self._preface, n)  # h2 itself checks the preface bytes
            self._preface -= i
            run += view[:i]
        while i < n:
            if self._skip:
                k = min(self._skip, n - i)
                run += view[i : i + k]
                self._skip -= k
                i += k
            elif self._goaway is not None:
                k = min(self._goaway_len - len(self._goaway), n - i)
                self._goaway += view[i : i + k]
                i += k
                if len(self._goaway) == self._goaway_len:
                    if run:
                        out.append(bytes(run))
                        run.clear()
                    out.append(_parse_goaway(bytes(self._goaway)))
                    self._goaway = None
            else:
                k = min(9 - len(self._head), n - i)
                self._head += view[i : i + k]
                i += k
                if len(self._head) == 9:
                    header = bytes(self._head)
                    self._head.clear()
                    try:
                        self._frame(header, run, now)
                    except GuardError as exc:
                        if run:
                            out.append(bytes(run))
                        out.append(exc)
                        return out
        if run:
            out.append(bytes(run))
        return out

    def _frame(self, header: bytes, run: bytearray, now: float) -> None:
        length = int.from_bytes(header[:3], "big")
        kind, flags = header[3], header[4]
        stream_id = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
        if length > self._max_frame:
            raise GuardError(_FRAME_SIZE_ERROR, f"frame of {length} bytes exceeds SETTINGS_MAX_FRAME_SIZE")
        if kind == _SETTINGS and flags & _ACK and length:
            raise GuardError(_FRAME_SIZE_ERROR, "SETTINGS acknowledgement with a payload")  # §6.5
        self._check_block(kind, flags, length)
        self._count(kind, flags, length, now)
        if kind == _GOAWAY and stream_id == 0 and length >= 8 and not self._in_block:
            self._goaway = bytearray()
            self._goaway_len = length
        else:
            # Malformed GOAWAYs go to h2, which raises the right connection error for them.
            run += header
            self._skip = length

    def _check_block(self, kind: int, flags: int, length: int) -> None:
        """Bound a header block (HEADERS/PUSH_PROMISE + CONTINUATIONs), RFC 9113 §6.10."""
        if kind == _CONTINUATION and self._in_block:
            self._block_frames += 1
            self._block_bytes += length
            if self._block_frames > self._max_continuations:
                raise GuardError(_ENHANCE_YOUR_CALM, "too many CONTINUATION frames in a header block")
        elif kind in (_HEADERS, _PUSH_PROMISE):
            self._in_block = True
            self._block_frames, self._block_bytes = 0, length
        else:
            return  # any other frame inside a block is h2's PROTOCOL_ERROR to raise
        if self._block_bytes > self._max_block:
            raise GuardError(_ENHANCE_YOUR_CALM, "header block too large")
        if flags & _END_HEADERS:
            self._in_block = False

    def _count(self, kind: int, flags: int, length: int, now: float) -> None:
        if kind == _SETTINGS and not flags & _ACK:
            slot = 0
        elif kind == _PING and not flags & _ACK:
            slot = 1
        elif kind == _PRIORITY or (kind == _DATA and length == 0 and not flags & _END_STREAM):
            slot = 2
        else:
            return
        if now - self._window_start >= self._window:
            self._window_start = now
            self._counts = [0, 0, 0]
        self._counts[slot] += 1
        if self._counts[slot] > self._limits[slot]:
            name = ("SETTINGS", "PING", "empty-frame")[slot]
            raise GuardError(_ENHANCE_YOUR_CALM, f"{name} flood")


def _parse_goaway(payload: bytes) -> GoAway:
    last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
    return GoAway(last, int.from_bytes(payload[4:8], "big"), payload[8:])


class ResetBudget:
    """How many streams a client may reset (rapid reset, CVE-2023-44487), two ways at once.

    * per accepted streams: at most `max_resets` resets per window of `per_streams` accepted
      streams. This catches a burst of open-and-reset pairs, but a client that resets a bit
      less than that share of its streams would never trip it, however fast it goes;
    * per time: a token bucket of `burst` tokens, refilled at `rate` per second; each reset
      takes one (as Netty's 200 RST_STREAM per 30 s and Jetty's events per second do). This
      bounds what any mix costs, at any share of resets.

    The owner also keeps a reset stream's handler counted against the stream limit until the
    handler has finished (`H2ServerConnection.handler_done`), as Go's server counts handlers
    rather than open streams: a reset frees a stream id at once, not the work it started.
    """

    __slots__ = ("_burst", "_max_resets", "_per_streams", "_rate", "_resets", "_stamp", "_streams", "_tokens")

    def __init__(self, *, max_resets: int, per_streams: int, rate: float, burst: int) -> None:
        self._max_resets = max_resets
        self._per_streams = per_streams
        self._rate = rate
        self._burst = float(burst)
        self._streams = self._resets = 0
        self._tokens = float(burst)
        self._stamp: float | None = None  # when the bucket was last refilled

    def accepted(self) -> None:
        """A stream was accepted: the per-streams window moves on."""
        self._streams += 1
        if self._streams > self._per_streams:
            self._streams, self._resets = 1, 0

    def reset(self, now: float) -> str | None:
        """The client reset a stream at `now`; returns why that is one too many, or None."""
        self._resets += 1
        if self._resets > self._max_resets:
            return f"more than {self._max_resets} of {self._per_streams} streams reset by the client"
        if self._stamp is None or now > self._stamp:
            if self._stamp is not None:
                self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
        if self._tokens < 1.0:
            return f"streams reset faster than {self._rate:g} per second (burst {self._burst:g})"
        self._tokens -= 1.0
        return None
