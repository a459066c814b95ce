"""HTTP/2 (RFC 9113) as a pure sans-IO adapter around h2: bytes in, events out; events in, bytes out.

`H2ServerConnection` is the client-facing side, `H2ClientConnection` the upstream side. Both speak
only `runtime/events.py`, with the h2 stream id in every event, so a stream is handled exactly
like an HTTP/1.1 request: `RequestHead` (pseudo-headers translated: `:method`, `:path` as the
target, `:scheme`, `:authority` also as `host` when the client sent none), `Body`, `Trailers`,
`EndOfBody`, `Reset`, and `ConnectionClosed` for GOAWAY or EOF. A request that is well framed
but whose `:method` or `:path` no request line could carry (a space, a control character, a
path that is not origin-form) is still reported, and `invalid` names it (stream id -> why) until
the next `receive_data`, so that the owner answers 400 as HTTP/1.1 does, instead of a reset.

Every call may produce bytes to send: `send()` and `acknowledge()` return them, and after
`receive_data()` the socket owner fetches them with `data_to_send()` (SETTINGS and PING
acknowledgements, WINDOW_UPDATEs, DATA released by a window update). The owner must write them
in the order they were produced: HPACK state makes HEADERS frames order-sensitive.

Flow control (RFC 9113 §5.2, §6.9):

* receiving: nothing is acknowledged on receipt. The owner calls `acknowledge(stream_id, n)` as
  the application consumes `n` bytes of a `Body`, and only then may a WINDOW_UPDATE go out. So
  a peer can never have more than the stream window (`initial_window_size`) buffered per stream
  nor the connection window (`connection_window_size`) per connection. Padding is acknowledged
  at once (the application never sees it), and what a stream still holds when it closes or is
  reset is handed back to the connection window;
* sending: `send(Body)` emits only what the peer's windows allow, in frames no larger than its
  SETTINGS_MAX_FRAME_SIZE, and keeps the rest (and any END_STREAM or trailers behind it)
  pending. `writable(stream_id)` is false while anything is pending; window updates received
  later release pending data round-robin across streams, one frame per stream per round.

Protection on top of h2 (see `_h2guard.py` for the frame-level part):

* SETTINGS_MAX_CONCURRENT_STREAMS is enforced here, as a stream error REFUSED_STREAM (§5.1.2):
  h2 would end the whole connection, so h2 is given a looser internal cap and the advertised
  value is written in our own SETTINGS frame;
* SETTINGS_MAX_HEADER_LIST_SIZE is advertised and enforced by the HPACK decoder;
* rapid reset (CVE-2023-44487): a request reset by the client in the same read that opened it
  is never reported (no upstream work starts). Client resets are budgeted per window of
  `reset_window` accepted streams (`max_resets`) and per time (a token bucket: `reset_burst`,
  refilled at `reset_rate` per second, `now` passed to `receive_data`); over either budget
  the connection ends with GOAWAY ENHANCE_YOUR_CALM. A reported stream the client resets keeps
  counting against SETTINGS_MAX_CONCURRENT_STREAMS until its owner calls `handler_done`: the
  work it started is still running;
* header names holding `_` follow `H2Settings.underscore_headers` as on HTTP/1.1
  (`underscores.py`); under `reject` the request is reported with its reason in `invalid`, so
  the owner answers 400 without dispatching it, as for an invalid request line;
* `goaway()` announces a graceful shutdown with the last accepted stream id; later streams are
  refused while accepted ones finish. h2 would close its state machine on any GOAWAY, sent or
  received, so both directions are handled here (a received GOAWAY resets, with
  REFUSED_STREAM, only our streams above its last stream id: they are safe to retry).

h2's exceptions become `H2ProtocolError` carrying the GOAWAY to send before closing.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from operator import itemgetter

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame, SettingsFrame

from ..events import (
    Body,
    ConnectionClosed,
    EndOfBody,
    Event,
    HeaderList,
    InformationalResponse,
    RequestHead,
    Reset,
    ResponseHead,
    Trailers,
)
from ._h2guard import FrameGuard, GoAway, GuardError, ResetBudget
from .http1 import ProtocolError
from .underscores import UnderscorePolicy, forwarded_fields

__all__ = [
    "H2ClientConnection",
    "H2ProtocolError",
    "H2ServerConnection",
    "H2Settings",
    "H2StreamError",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_S = h2.settings.SettingCodes
# RFC 9113 §8.2.2: connection-specific fields are not allowed in HTTP/2 (te only as "trailers").
_CONNECTION_SPECIFIC = frozenset(
    [b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"te", b"host"]
)
_CANCEL = int(ErrorCodes.CANCEL)
_REFUSED = int(ErrorCodes.REFUSED_STREAM)
_PROTOCOL = int(ErrorCodes.PROTOCOL_ERROR)
_CALM = int(ErrorCodes.ENHANCE_YOUR_CALM)
_COMPRESSION = int(ErrorCodes.COMPRESSION_ERROR)
# RFC 9113 §8.3.1: `:path` is an origin-form target (or `*` for OPTIONS), and a request-target
# holds visible ASCII only (RFC 9112 §3.2, RFC 3986 §2): HPACK itself would carry any byte.
_ORIGIN_FORM = re.compile(rb"/[\x21-\x7e]*")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a method is a token (RFC 9110 §9.1)
_COMMON_METHODS = frozenset([b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"CONNECT"])
_name_of = itemgetter(0)


@dataclass(frozen=True, slots=True)
class H2Settings:
    """Limits of one HTTP/2 connection (our side's SETTINGS and the protections above)."""

    max_concurrent_streams: int = 100
    max_header_list_size: int = 65536
    initial_window_size: int = 262144  # per-stream receive window: memory bound per stream
    connection_window_size: int = 1048576  # memory bound per connection
    max_continuations: int = 32
    # Frames per `flood_window` seconds that trigger GOAWAY ENHANCE_YOUR_CALM beyond these.
    max_settings: int = 50
    max_pings: int = 100
    max_empty_frames: int = 1000
    flood_window: float = 10.0
    # Rapid reset: at most `max_resets` client resets per `reset_window` accepted streams, and
    # per time a bucket of `reset_burst` resets refilled at `reset_rate` per second (Netty allows
    # 200 RST_STREAM per 30 s; a browser or a gRPC client cancelling calls stays well below).
    reset_window: int = 200
    max_resets: int = 100
    reset_rate: float = 10.0
    reset_burst: int = 200
    # RFC 8441 extended CONNECT (WebSocket over HTTP/2); server side only.
    enable_connect_protocol: bool = False
    # Request header names holding "_" (server side): see underscores.py.
    underscore_headers: UnderscorePolicy = "delete"


class H2ProtocolError(ProtocolError):
    """The connection is broken: send `data` (a GOAWAY with `error_code`), then close."""

    def __init__(self, status: int, message: str, error_code: int, data: bytes) -> None:
        super().__init__(status, message)
        self.error_code = error_code
        self.data = data


class H2StreamError(ProtocolError):
    """One stream failed on our side (e.g. a header h2 refuses); it was reset, the rest lives on."""

    def __init__(self, status: int, message: str, stream_id: int) -> None:
        super().__init__(status, message)
        self.stream_id = stream_id


class _Stream:
    """What the adapter tracks per open stream."""

    __slots__ = ("local_done", "pending", "pending_bytes", "remote_done", "tail", "unacked")

    def __init__(self, *, local_done: bool = False, remote_done: bool = False) -> None:
        self.local_done = local_done  # we sent END_STREAM
        self.remote_done = remote_done  # the peer sent END_STREAM
        self.unacked = 0  # bytes delivered as Body and not yet acknowledged
        self.pending: deque[memoryview] = deque()  # body data waiting for window
        self.pending_bytes = 0
        self.tail: HeaderList | bool | None = None  # END_STREAM (True) or trailers after pending


class _H2Adapter:
    """What both roles share: feeding h2, flow control, resets, GOAWAY."""

    __slots__ = (
        "_blocked",
        "_born",
        "_conn",
        "_dropped",
        "_goaway_sent",
        "_guard",
        "_last_id",
        "_now",
        "_out",
        "_peer_goaway",
        "_settings",
        "_streams",
        "invalid",
    )

    _status = 400  # what a broken peer means to the request (400 from a client, 502 upstream)

    def __init__(self, client_side: bool, settings: H2Settings) -> None:
        self._settings = settings
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=client_side, header_encoding=None)
        )
        advertised: dict[h2.settings.SettingCodes, int] = {
            _S.MAX_CONCURRENT_STREAMS: settings.max_concurrent_streams,
            _S.INITIAL_WINDOW_SIZE: settings.initial_window_size,
            _S.MAX_HEADER_LIST_SIZE: settings.max_header_list_size,
        }
        if client_side:
            advertised[_S.ENABLE_PUSH] = 0
        elif settings.enable_connect_protocol:
            advertised[_S.ENABLE_CONNECT_PROTOCOL] = 1
        # h2's own stream cap is a connection error; ours (REFUSED_STREAM) must fire first.
        internal = {**advertised, _S.MAX_CONCURRENT_STREAMS: 2 * settings.max_concurrent_streams + 100}
        conn.local_settings = h2.settings.Settings(client=client_side, initial_values=internal)
        conn.decoder.max_header_list_size = settings.max_header_list_size
        conn.initiate_connection()
        conn.clear_outbound_data_buffer()  # replaced by our SETTINGS with the advertised cap
        self._out = bytearray(PREFACE if client_side else b"")
        self._out += SettingsFrame(0, settings={int(k): v for k, v in advertised.items()}).serialize()
        extra = settings.connection_window_size - 65535
        if extra > 0:
            conn.increment_flow_control_window(extra)
        self._conn = conn
        self._guard = FrameGuard(
            server=not client_side,
            max_continuations=settings.max_continuations,
            max_header_block=settings.max_header_list_size + 16384,
            max_settings=settings.max_settings,
            max_pings=settings.max_pings,
            max_empty_frames=settings.max_empty_frames,
            window=settings.flood_window,
        )
        self._streams: dict[int, _Stream] = {}
        self._blocked: dict[int, None] = {}  # streams with pending data, in arrival order
        self._born: set[int] = set()
        self._dropped: set[int] = set()
        self._last_id = 0  # the highest stream id accepted (server) or opened (client)
        self._goaway_sent: int | None = None
        self._peer_goaway: GoAway | None = None
        # Requests of the last `receive_data` that are well framed but not valid HTTP (a `:path`
        # with a space): stream id -> why. The owner answers them with 400 instead of handling.
        self.invalid: dict[int, str] = {}
        self._now = 0.0  # the `now` of the read being processed

    # ------------------------------------------------------------------ receiving

    def receive_data(self, data: bytes, now: float = 0.0) -> list[Event]:
        """Feed bytes read from the socket (b"" at EOF); `now` drives the flood windows."""
        if not data:
            return self._eof()
        out: list[Event] = []
        self._now = now
        self._born.clear()
        if self.invalid:
            self.invalid.clear()
        try:
            for segment in self._guard.scan(data, now):
                if type(segment) is bytes:
                    for ev in self._conn.receive_data(segment):
                        self._on_event(ev, out)
                elif type(segment) is GoAway:
                    self._on_goaway(segment, out)
                else:
                    assert isinstance(segment, GuardError)
                    raise self._fail(segment.error_code, str(segment))
        except h2.exceptions.ProtocolError as exc:
            raise self._h2_failed(exc) from None
        if self._dropped:
            dropped = self._dropped
            out = [ev for ev in out if isinstance(ev, ConnectionClosed) or ev.stream_id not in dropped]
            dropped.clear()
        self._release_blocked()
        return out

    def _on_event(self, ev: h2.events.Event, out: list[Event]) -> None:
        t = type(ev)
        if t is h2.events.DataReceived:
            assert isinstance(ev, h2.events.DataReceived)
            self._on_data(ev.stream_id or 0, ev.data or b"", ev.flow_controlled_length or 0, out)
        elif t is h2.events.StreamEnded:
            sid = ev.stream_id  # type: ignore[attr-defined]
            st = self._streams.get(sid)
            if st is not None:
                st.remote_done = True
                out.append(EndOfBody(sid))
                self._maybe_close(sid, st)
        elif t is h2.events.TrailersReceived:
            assert isinstance(ev, h2.events.TrailersReceived)
            if ev.stream_id in self._streams:
                out.append(Trailers(ev.stream_id or 0, _plain(ev.headers)))
        elif t is h2.events.StreamReset:
            assert isinstance(ev, h2.events.StreamReset)
            self._on_reset(ev.stream_id or 0, int(ev.error_code or 0), out)
        elif t is h2.events.WindowUpdated or t is h2.events.RemoteSettingsChanged:
            pass  # pending data is released once the whole read is processed
        else:
            self._on_other(ev, out)

    def _on_other(self, ev: h2.events.Event, out: list[Event]) -> None:
        """Role-specific events (request or response heads); everything else is ignored."""

    def _on_data(self, sid: int, data: bytes, flow_length: int, out: list[Event]) -> None:
        st = self._streams.get(sid)
        if st is None:  # a stream we refused or reset: give the connection window back
            if flow_length:
                self._conn.acknowledge_received_data(flow_length, sid)
            return
        if flow_length > len(data):  # padding: never seen by the application
            self._conn.acknowledge_received_data(flow_length - len(data), sid)
        if data:
            st.unacked += len(data)
            out.append(Body(sid, data))

    def _on_reset(self, sid: int, code: int, out: list[Event]) -> None:
        st = self._streams.pop(sid, None)
        if st is None:
            return
        self._blocked.pop(sid, None)
        self._release(sid, st)
        if sid in self._born:
            self._dropped.add(sid)  # opened and reset in one read: nobody starts work for it
            self._peer_reset(sid, False)
        else:
            out.append(Reset(sid, code))
            self._peer_reset(sid, True)

    def _peer_reset(self, sid: int, reported: bool) -> None:
        """Hook for the rapid-reset budget (server side); `reported`: its owner started work."""

    def _on_goaway(self, goaway: GoAway, out: list[Event]) -> None:
        self._peer_goaway = goaway
        out.append(ConnectionClosed(goaway.last_stream_id))

    def _eof(self) -> list[Event]:
        out: list[Event] = [Reset(sid, 0) for sid in self._streams]
        for sid, st in list(self._streams.items()):
            self._release(sid, st)
        self._streams.clear()
        self._blocked.clear()
        out.append(ConnectionClosed(self._last_id))
        return out

    # ------------------------------------------------------------------ flow control

    def acknowledge(self, stream_id: int, n: int) -> bytes:
        """The application consumed `n` bytes of `stream_id`'s body: open the windows again."""
        st = self._streams.get(stream_id)
        if st is not None and n > 0:
            n = min(n, st.unacked)
            st.unacked -= n
            if n:
                self._conn.acknowledge_received_data(n, stream_id)
        return self.data_to_send()

    def pending(self, stream_id: int) -> int:
        """Body bytes accepted by `send` but still waiting for the peer's window."""
        st = self._streams.get(stream_id)
        return st.pending_bytes if st is not None else 0

    def writable(self, stream_id: int) -> bool:
        """Whether `stream_id` has nothing pending (the owner may send its next chunk)."""
        st = self._streams.get(stream_id)
        return st is None or (not st.pending and st.tail is None)

    def _release(self, sid: int, st: _Stream) -> None:
        """Hand what a finished stream still holds back to the connection window."""
        if st.unacked:
            self._conn.acknowledge_received_data(st.unacked, sid)
            st.unacked = 0

    def _release_blocked(self) -> None:
        """Send pending data as windows allow: one frame per stream per round (fairness)."""
        blocked = self._blocked
        progress = True
        while blocked and progress:
            progress = False
            for sid in list(blocked):
                st = self._streams.get(sid)
                if st is None:
                    blocked.pop(sid, None)
                elif self._flush(sid, st, one_frame=True):
                    progress = True

    def _flush(self, sid: int, st: _Stream, *, one_frame: bool = False) -> bool:
        """Send what the windows allow of `sid`'s pending data; returns whether anything went."""
        conn, sent = self._conn, False
        pending = st.pending
        while pending:
            room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            if room <= 0:
                break
            chunk = pending[0]
            if len(chunk) <= room:
                pending.popleft()
                piece = chunk
            else:
                piece, pending[0] = chunk[:room], chunk[room:]
            st.pending_bytes -= len(piece)
            last = not pending and st.tail is True
            conn.send_data(sid, piece, end_stream=last)
            sent = True
            if last:
                st.tail = None
                self._local_end(sid, st)
            if one_frame:
                break
        if pending:
            self._blocked[sid] = None
            return sent
        self._blocked.pop(sid, None)
        tail = st.tail
        if tail is not None:
            st.tail = None
            if tail is True:
                conn.end_stream(sid)
            else:
                assert not isinstance(tail, bool)
                conn.send_headers(sid, tail, end_stream=True)
            self._local_end(sid, st)
            sent = True
        return sent

    # ------------------------------------------------------------------ sending

    def send(self, event: Event, *, end_stream: bool = False) -> bytes:
        """Serialise one event; `end_stream` ends the stream with a head or a body chunk.

        Events for a stream that is already gone (the peer reset it) are dropped silently:
        that race is inherent to multiplexing.
        """
        t = type(event)
        try:
            if t is Body:
                assert isinstance(event, Body)
                self._send_body(event.stream_id, event.data, end_stream)
            elif t is EndOfBody:
                self._send_tail(event.stream_id, True)  # type: ignore[union-attr]
            elif t is Trailers:
                assert isinstance(event, Trailers)
                self._send_tail(event.stream_id, _fields(event.headers))
            elif t is Reset:
                assert isinstance(event, Reset)
                self._reset(event.stream_id, event.error_code)
            elif t is ConnectionClosed:
                assert isinstance(event, ConnectionClosed)
                self.goaway(last_stream_id=event.last_stream_id or None)
            else:
                self._send_head(event, end_stream)
        except h2.exceptions.StreamClosedError:
            self._streams.pop(getattr(event, "stream_id", 0), None)
        except h2.exceptions.ProtocolError as exc:
            sid = getattr(event, "stream_id", 0)
            self._reset(sid, int(ErrorCodes.INTERNAL_ERROR))
            raise H2StreamError(500, str(exc), sid) from None
        return self.data_to_send()

    def _send_head(self, event: Event, end_stream: bool) -> None:
        raise NotImplementedError

    def _send_body(self, sid: int, data: bytes, end_stream: bool) -> None:
        st = self._streams.get(sid)
        if st is None or st.local_done or st.tail is not None:
            return
        if data:
            st.pending.append(memoryview(data))
            st.pending_bytes += len(data)
        if end_stream:
            st.tail = True
        self._flush(sid, st)

    def _send_tail(self, sid: int, tail: HeaderList | bool) -> None:
        st = self._streams.get(sid)
        if st is None or st.local_done or st.tail is not None:
            return
        st.tail = tail
        self._flush(sid, st)

    def _local_end(self, sid: int, st: _Stream) -> None:
        st.local_done = True
        self._maybe_close(sid, st)

    def _maybe_close(self, sid: int, st: _Stream) -> None:
        if st.local_done and st.remote_done:
            del self._streams[sid]
            self._release(sid, st)

    def _reset(self, sid: int, code: int) -> None:
        st = self._streams.pop(sid, None)
        if st is None:
            return
        self._blocked.pop(sid, None)
        if code == 0 and not st.local_done:
            code = _CANCEL  # NO_ERROR would tell the peer our incomplete message was complete
        try:
            self._conn.reset_stream(sid, code)
        except h2.exceptions.StreamClosedError:
            pass
        self._release(sid, st)

    def goaway(self, error_code: int = 0, last_stream_id: int | None = None) -> bytes:
        """Announce shutdown (RFC 9113 §6.8): streams up to `last_stream_id` may finish."""
        last = self._last_id if last_stream_id is None else last_stream_id
        if self._goaway_sent is None or last < self._goaway_sent:
            self._goaway_sent = last
        self._out += self._conn.data_to_send()
        self._out += _goaway_frame(last, error_code)
        return self.data_to_send()

    def ping(self, opaque: bytes = b"\x00" * 8) -> bytes:
        self._conn.ping(opaque)
        return self.data_to_send()

    def data_to_send(self) -> bytes:
        """Every byte produced so far and not yet fetched, in order."""
        if self._out:
            data = bytes(self._out) + self._conn.data_to_send()
            self._out.clear()
            return data
        return self._conn.data_to_send()

    def _h2_failed(self, exc: h2.exceptions.ProtocolError) -> H2ProtocolError:
        """h2 raised, usually after queueing a GOAWAY: ours replaces it, with COMPRESSION_ERROR for
        HPACK failures (RFC 9113 §4.3) where h2 says PROTOCOL_ERROR."""
        code, data = int(exc.error_code), self.data_to_send()
        if data[-17:-13] == b"\x00\x00\x08\x07":
            data = data[:-17]
        if code == _PROTOCOL and isinstance(exc.__cause__, hpack.HPACKError):
            code = _COMPRESSION
        # (A bad preface raises before h2 queues any GOAWAY.)
        data += _goaway_frame(self._conn.highest_inbound_stream_id, code)
        return H2ProtocolError(self._status, str(exc), code, data)

    def _fail(self, code: int, message: str) -> H2ProtocolError:
        """End the connection with GOAWAY `code`; returns the exception to raise."""
        self._conn.close_connection(code, last_stream_id=self._last_id)
        return H2ProtocolError(self._status, message, code, self.data_to_send())

    # ------------------------------------------------------------------ state

    def is_open(self, stream_id: int) -> bool:
        """Whether `stream_id` is still open in either direction (not ended both ways nor reset)."""
        return stream_id in self._streams

    @property
    def active_streams(self) -> int:
        """Streams not yet finished in both directions (drain waits for 0 after `goaway`)."""
        return len(self._streams)

    @property
    def last_stream_id(self) -> int:
        return self._last_id

    @property
    def peer_goaway(self) -> GoAway | None:
        """The GOAWAY the peer sent, if any."""
        return self._peer_goaway


def _goaway_frame(last_stream_id: int, error_code: int) -> bytes:
    frame = GoAwayFrame(0)
    frame.last_stream_id = last_stream_id
    frame.error_code = error_code
    return bytes(frame.serialize())


def _plain(headers: object) -> HeaderList:
    return [(bytes(n), bytes(v)) for n, v in headers]  # type: ignore[attr-defined]


def _fields(headers: HeaderList, *, request: bool = False) -> HeaderList:
    """Drop what HTTP/2 forbids (RFC 9113 §8.2.2) and pseudo-header look-alikes."""
    out: HeaderList = []
    for name, value in headers:
        if name in _CONNECTION_SPECIFIC:
            if name == b"te" and value.strip().lower() == b"trailers":
                out.append((name, b"trailers"))
            elif name == b"host" and not request:
                out.append((name, value))
        elif name[:1] != b":":
            out.append((name, value))
    return out


class H2ServerConnection(_H2Adapter):
    """The client-facing side: parses requests, serialises responses."""

    __slots__ = ("_resets", "_running_resets")

    def __init__(self, settings: H2Settings | None = None) -> None:
        super().__init__(False, settings or H2Settings())
        s = self._settings
        self._resets = ResetBudget(
            max_resets=s.max_resets, per_streams=s.reset_window, rate=s.reset_rate, burst=s.reset_burst
        )
        self._running_resets: set[int] = set()  # reset by the client, its handler not yet done

    def handler_done(self, stream_id: int) -> None:
        """The owner's work for `stream_id` has ended: if the client reset that stream, its
        slot under SETTINGS_MAX_CONCURRENT_STREAMS is free again."""
        if self._running_resets:
            self._running_resets.discard(stream_id)

    def _on_other(self, ev: h2.events.Event, out: list[Event]) -> None:
        if type(ev) is h2.events.RequestReceived:
            assert isinstance(ev, h2.events.RequestReceived)
            self._on_request(ev.stream_id or 0, _plain(ev.headers), bool(ev.stream_ended), out)

    def _on_request(self, sid: int, raw: HeaderList, ended: bool, out: list[Event]) -> None:
        conn, settings = self._conn, self._settings
        busy = len(self._streams) + len(self._running_resets)  # reset handlers still run
        if (
            self._goaway_sent is not None and sid > self._goaway_sent
        ) or busy >= settings.max_concurrent_streams:
            conn.reset_stream(sid, _REFUSED)  # RFC 9113 §5.1.2, §8.7: safe for the client to retry
            return
        head = _request_head(sid, raw, ended, self.invalid)
        if head is None:
            conn.reset_stream(sid, _PROTOCOL)  # malformed (RFC 9113 §8.1.1)
            return
        if b"_" in b"".join(map(_name_of, head.headers)):
            fields = forwarded_fields(head.headers, settings.underscore_headers)
            if fields is None:
                self.invalid[sid] = "header name with an underscore"  # answered 400, not dispatched
            else:
                head.headers[:] = fields
        self._streams[sid] = _Stream(remote_done=ended)
        self._born.add(sid)
        self._last_id = sid
        self._resets.accepted()
        out.append(head)

    def _peer_reset(self, sid: int, reported: bool) -> None:
        if reported:
            self._running_resets.add(sid)
        problem = self._resets.reset(self._now)
        if problem is not None:
            raise self._fail(_CALM, f"rapid reset: {problem}")

    def _send_head(self, event: Event, end_stream: bool) -> None:
        if type(event) is ResponseHead or type(event) is InformationalResponse:
            assert isinstance(event, ResponseHead | InformationalResponse)
            st = self._streams.get(event.stream_id)
            if st is None or st.local_done:
                return
            if type(event) is InformationalResponse:
                if event.status == 101:
                    return  # RFC 9113 §8.6: no 101 in HTTP/2
                end_stream = False
            headers = [(b":status", b"%d" % event.status), *_fields(event.headers)]
            self._conn.send_headers(event.stream_id, headers, end_stream=end_stream)
            if end_stream:
                self._local_end(event.stream_id, st)
            return
        raise TypeError(f"a server cannot send {type(event).__name__}")


def _request_line_problem(method: bytes, path: bytes | None) -> str | None:
    """Why `:method` / `:path` make no valid request, or None (the fast path: two regexps).

    Only what an HTTP/1.1 request line could not carry either. A stream error would tell the
    client nothing, so these streams are reported and answered with 400, as on HTTP/1.1.
    """
    if method not in _COMMON_METHODS and _TOKEN.fullmatch(method) is None:
        return "invalid :method"
    if path is None or _ORIGIN_FORM.fullmatch(path) is not None:
        return None  # CONNECT carries no :path (h2 checks the required pseudo-headers)
    if path == b"*" and method == b"OPTIONS":
        return None
    return "invalid :path: an origin-form target of visible ASCII characters is required"


def _request_head(sid: int, raw: HeaderList, ended: bool, invalid: dict[int, str]) -> RequestHead | None:
    """Translate a validated h2 header block into a RequestHead; None when malformed. A head
    that is well formed but no valid request line is recorded in `invalid` (id -> why)."""
    method = path = scheme = authority = protocol = None
    headers: HeaderList = []
    host = None
    for name, value in raw:
        if name[:1] == b":":
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":scheme":
                scheme = value
            elif name == b":authority":
                authority = value
            elif name == b":protocol":
                protocol = value
        else:
            if name == b"host":
                host = value
            headers.append((name, value))
    if method is None:
        return None
    problem = _request_line_problem(method, path)
    if problem is not None:
        invalid[sid] = problem
    if authority is None:
        authority = host or b""
    elif host is None:
        headers.insert(0, (b"host", authority))  # RFC 9113 §8.3.1, for HTTP/1.1 hops and routing
    elif host != authority:
        return None  # two different targets: refuse rather than route by either
    if protocol is not None:
        headers.insert(0, (b":protocol", protocol))  # RFC 8441 extended CONNECT
    target = path if path is not None else authority  # CONNECT has no :path
    return RequestHead(sid, method, target, headers, b"2", scheme or b"https", authority, has_body=not ended)


class H2ClientConnection(_H2Adapter):
    """The upstream side: serialises requests, parses responses. Errors are 502."""

    __slots__ = ()
    _status = 502

    def __init__(self, settings: H2Settings | None = None) -> None:
        super().__init__(True, settings or H2Settings())

    def open_stream(self) -> int:
        """The id for the next request; send its RequestHead before opening another."""
        return self._conn.get_next_available_stream_id()

    @property
    def available_streams(self) -> int:
        """How many more requests the server accepts now (0 after GOAWAY or id exhaustion)."""
        if self._peer_goaway is not None or self._goaway_sent is not None:
            return 0
        if self._last_id + 2 > 2**31 - 1:
            return 0
        limit = self._conn.remote_settings.max_concurrent_streams
        return max(0, limit - len(self._streams))

    def _on_other(self, ev: h2.events.Event, out: list[Event]) -> None:
        t = type(ev)
        if t is h2.events.ResponseReceived or t is h2.events.InformationalResponseReceived:
            assert isinstance(ev, h2.events.ResponseReceived | h2.events.InformationalResponseReceived)
            sid = ev.stream_id or 0
            if sid not in self._streams:
                return
            raw = _plain(ev.headers)
            status = next((v for n, v in raw if n == b":status"), b"")
            headers = [(n, v) for n, v in raw if n[:1] != b":"]
            if not status.isdigit():
                self._reset(sid, _PROTOCOL)
                out.append(Reset(sid, _PROTOCOL))
            elif t is h2.events.ResponseReceived:
                out.append(ResponseHead(sid, int(status), headers, b"2"))
            else:
                out.append(InformationalResponse(sid, int(status), headers))

    def _on_goaway(self, goaway: GoAway, out: list[Event]) -> None:
        # Streams above the last id were never processed (RFC 9113 §6.8): safe to retry.
        for sid in [s for s in self._streams if s > goaway.last_stream_id]:
            st = self._streams.pop(sid)
            self._blocked.pop(sid, None)
            self._release(sid, st)
            out.append(Reset(sid, _REFUSED))
        super()._on_goaway(goaway, out)

    def _send_head(self, event: Event, end_stream: bool) -> None:
        if type(event) is not RequestHead:
            raise TypeError(f"a client cannot send {type(event).__name__}")
        assert isinstance(event, RequestHead)
        sid = event.stream_id
        authority = event.authority or next((v for n, v in event.headers if n == b"host"), b"")
        if event.method == b"CONNECT":
            pseudo = [(b":method", event.method), (b":authority", authority or event.target)]
        else:
            pseudo = [(b":method", event.method), (b":scheme", event.scheme), (b":path", event.target)]
            if authority:
                pseudo.insert(2, (b":authority", authority))
        end = end_stream or not event.has_body
        self._conn.send_headers(sid, pseudo + _fields(event.headers, request=True), end_stream=end)
        self._streams[sid] = _Stream(local_done=end)
        self._last_id = max(self._last_id, sid)
