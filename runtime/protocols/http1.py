"""HTTP/1.1 as a pure sans-IO adapter around h11 (RFC 9112): bytes in, events out; events in, bytes out.

`ServerConnection` parses what a client sends and serialises our responses; `ClientConnection`
does the reverse for upstream connections. Both speak only `runtime/events.py`: no h11 type
leaves this module. `http1_fast.py` is the same adapter on llhttp; this one is the reference
it is tested against (property_tests/test_http1_differential.py).

h11 already refuses most malformed input (bad Content-Length, several Transfer-Encodings, a
missing or repeated Host, illegal characters). What it accepts but a proxy must not, because
the next hop might read the message differently (request smuggling), is refused here with 400:

* Content-Length together with Transfer-Encoding (RFC 9112 §6.3: "ought to be handled as an
  error"; h11 silently lets TE win);
* Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1);
* obs-fold continuation lines (RFC 9112 §5.2; h11 unfolds them);
* a request target that is neither origin-form, absolute-form nor `*`;
* a chunked body that breaks RFC 9112 §7.1 (h11 accepts any chunk extension and a bare LF in
  the trailer section): `chunked.py` reads its framing strictly, beside h11.

Empty lines before a request line are dropped before h11 sees them (RFC 9112 §2.2: a server
SHOULD ignore at least one; nginx and Go skip any CR or LF there). Header names holding `_`
follow the entrypoint's policy (`underscores.py`). h11's error hints pass through for 431 and
for 501, an unknown transfer coding (RFC 9112 §6.1); every other client error is 400.

Size limits are checked on the raw head before h11 parses it, so an oversized head costs no
parsing: request line -> 414, header section bytes or field count -> 431. Every check is a
C-level bytes scan (`find`/`count`), never a per-request regex.
"""

from __future__ import annotations

from http import HTTPStatus
from operator import itemgetter
from typing import TypeVar

import h11
from h11._events import method_re as _METHOD
from h11._events import request_target_re as _TARGET
from h11._headers import CONTENT_LENGTH_MAX_DIGITS as _CONTENT_LENGTH_DIGITS
from h11._headers import Headers as _H11Headers
from h11._state import MIGHT_SWITCH_PROTOCOL as _MIGHT_SWITCH
from h11._writers import ChunkedWriter as _ChunkedWriter
from h11._writers import ContentLengthWriter as _ContentLengthWriter

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
from .chunked import ChunkedFraming, FramingError
from .underscores import UnderscorePolicy, forwarded_fields

__all__ = ["ClientConnection", "ProtocolError", "ServerConnection", "render_response"]

_name_of = itemgetter(0)
_value_of = itemgetter(1)
# h11's events are frozen dataclasses; `_filled` fills them as h11's own __init__ does (h11 is
# pinned to 0.16.x in pyproject for the private names used here).
_E = TypeVar("_E", bound=h11.Event)
# RFC 9110 §5.6.2 tchar.
_TOKEN_CHARS = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER_TOKEN_CHARS = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
# The status line's reason phrase when the response has none of its own. RFC 9112 §4 lets it be
# empty, but nginx, Go (Traefik) and Envoy all write the registered phrase, and some clients and
# most people reading a capture expect "200 OK" rather than "200 ".
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


class ProtocolError(Exception):
    """The peer broke HTTP/1.1. `status` is what to answer (4xx to a client, 502 for an upstream)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def render_response(head: ResponseHead, body: bytes) -> bytes:
    """Serialise a complete response without consulting any connection state.

    Used for answers sent when the state machine cannot help: a 400 after a parse error, a 503
    to a connection refused by the connection limit. The caller closes the connection after it.
    """
    lines = [b"HTTP/1.1 %d %s\r\n" % (head.status, head.reason or _REASONS.get(head.status, b""))]
    lines += [b"%s: %s\r\n" % pair for pair in head.headers]
    lines.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
    return b"".join(lines) + body


_WIRE_BREAKS = b"\n\r\x00"


def _safe_fields(headers: HeaderList) -> bool:
    """Whether serialising `headers` cannot break the message: token names, no CR/LF/NUL in values.

    This is the part of h11's per-field regex validation that protects the wire (RFC 9110 §5.1,
    §5.5), done as a few C-level scans over all fields at once. When it holds, h11 is told the
    fields are already validated (`_parsed=True`, its own fast path for parsed input); when it
    does not, h11 validates field by field and raises on the culprit.
    """
    return _wire_safe(headers, list(map(_name_of, headers)), _TOKEN_CHARS)


def _wire_safe(headers: HeaderList, names: list[bytes], name_chars: bytes) -> bool:
    values = b"".join(map(_value_of, headers))
    # One translate (a C call with no argument parsing) rather than three `in` tests: on
    # CPython 3.11 `sub in some_bytes` first tries `sub` as an integer and formats the
    # TypeError it then discards, ~2,000 instructions each.
    return (
        not b"".join(names).translate(None, name_chars)
        and b"" not in names
        and len(values.translate(None, _WIRE_BREAKS)) == len(values)
    )


def _ready_headers(headers: HeaderList, names: list[bytes]) -> _H11Headers | None:
    """h11's header container for `headers` when it needs none of the work h11 would do on it.

    h11 builds it with `normalize_and_validate`: a Python loop per field lower-casing names and
    checking the framing fields, then a second loop (through its Sequence protocol) counting
    Host. For the usual head (lower-case token names, safe values, at most one well-formed
    Content-Length, Transfer-Encoding exactly `chunked`) that work changes nothing, and the
    C-level scans of `_ready` prove it; anything else returns None and goes through h11's own
    checks, which raise on the culprit. property_tests/test_http1_fast_heads.py checks both
    paths give the same bytes.
    """
    if not _ready(headers, names):
        return None
    return _H11Headers([(name, name, value) for name, value in headers])


def _ready(headers: HeaderList, names: list[bytes]) -> bool:
    """Whether h11 would send `headers` as they are (see `_ready_headers`; http1_fast.py writes
    such a head from the fields as they are)."""
    if not _wire_safe(headers, names, _LOWER_TOKEN_CHARS):
        return False
    if b"content-length" in names:
        if names.count(b"content-length") != 1:
            return False
        length = headers[names.index(b"content-length")][1]
        if not (length.isdigit() and len(length) <= _CONTENT_LENGTH_DIGITS):
            return False
    return b"transfer-encoding" not in names or (
        names.count(b"transfer-encoding") == 1 and headers[names.index(b"transfer-encoding")][1] == b"chunked"
    )


def _filled(event_type: type[_E], **fields: object) -> _E:
    """An h11 event (a frozen dataclass) with its fields set as h11's own __init__ sets them,
    minus the checks the caller has proven unnecessary."""
    event = object.__new__(event_type)
    for name, value in fields.items():
        object.__setattr__(event, name, value)
    return event


def _request_event(method: bytes, target: bytes, headers: HeaderList) -> h11.Request:
    """`h11.Request(...)` for an HTTP/1.1 request, skipping the checks `_ready_headers` made."""
    names = list(map(_name_of, headers))
    ready = _ready_headers(headers, names) if names.count(b"host") == 1 else None
    if ready is None or _METHOD.fullmatch(method) is None or _TARGET.fullmatch(target) is None:
        return h11.Request(method=method, target=target, headers=headers, _parsed=_safe_fields(headers))
    return _filled(h11.Request, method=method, target=target, headers=ready, http_version=b"1.1")


def _response_event(status: int, reason: bytes, headers: HeaderList) -> h11.Response:
    """`h11.Response(...)`, skipping the checks `_ready_headers` made."""
    ready = _ready_headers(headers, list(map(_name_of, headers))) if 200 <= status < 1000 else None
    if ready is None:
        return h11.Response(status_code=status, headers=headers, reason=reason, _parsed=_safe_fields(headers))
    return _filled(h11.Response, status_code=status, reason=reason, headers=ready, http_version=b"1.1")


def _head_end(buf: bytes) -> int:
    """Index just past the blank line ending the head (h11 accepts `\\n\\r\\n` and `\\n\\n`), or -1."""
    crlf = buf.find(b"\n\r\n")
    if crlf < 0:
        lf = buf.find(b"\n\n")
        return lf + 2 if lf >= 0 else -1
    lf = buf.find(b"\n\n", 0, crlf + 2)
    return crlf + 3 if lf < 0 else lf + 2


class _Adapter:
    """What both roles share: feeding h11 and translating its events into ours."""

    __slots__ = ("_conn", "_eof")

    _error_status = 400

    def __init__(self, role: type[h11.CLIENT] | type[h11.SERVER], max_event: int) -> None:
        self._conn = h11.Connection(role, max_incomplete_event_size=max_event)
        self._eof = False

    def _drain(self) -> list[Event]:
        """Pull every event h11 can produce from what it has buffered."""
        out: list[Event] = []
        conn = self._conn
        while True:
            try:
                ev = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if self._eof:  # the peer hung up mid-message: nothing left to answer
                    out.append(Reset(1))
                    return out
                status = self._status_of(exc.error_status_hint)
                raise ProtocolError(status, str(exc)) from None
            if ev is h11.NEED_DATA or ev is h11.PAUSED or isinstance(ev, type):
                return out
            if type(ev) is h11.Data:
                out.append(Body(1, ev.data))
            elif type(ev) is h11.EndOfMessage:
                if ev.headers:
                    out.append(Trailers(1, list(ev.headers)))
                out.append(EndOfBody(1))
            elif type(ev) is h11.ConnectionClosed:
                out.append(ConnectionClosed())
                return out
            else:
                out.append(self._head_event(ev))

    def _status_of(self, hint: int) -> int:
        """The status a peer's protocol error answers, from h11's hint."""
        return hint if hint == 431 else self._error_status

    def _head_event(self, ev: h11.Event) -> Event:
        raise NotImplementedError

    def _send(self, ev: h11.Event) -> bytes:
        return self._conn.send(ev) or b""

    def send(self, event: Event) -> bytes:
        """Serialise one event (b"" when it produces no bytes, e.g. the end of a sized body)."""
        try:
            if type(event) is Body:
                return self.send_body(event.data)
            if type(event) is EndOfBody:
                return self._send(h11.EndOfMessage())
            if type(event) is Trailers:
                return self._send(h11.EndOfMessage(headers=event.headers))
            if type(event) is ConnectionClosed or type(event) is Reset:
                self._conn.send(h11.ConnectionClosed())
                return b""
            return self._send_head(event)
        except h11.LocalProtocolError as exc:
            # Our own message is inconsistent (a field that would inject a line, a body that
            # overruns its Content-Length): the only safe move is to abort the connection.
            raise ProtocolError(500, str(exc)) from None

    def send_body(self, data: bytes) -> bytes:
        """`send(Body(1, data))` without the event: the per-chunk path (every SSE event).

        In SEND_BODY a Data event changes no h11 state, so its bytes are the body writer's
        alone: framed here as h11's writer frames them (a sized body counts down, a chunked one
        gets its size line), without the event object and the state machine's round trip.
        Anything else (another state, a chunk past Content-Length) goes through h11, which
        raises and records the error. property_tests/test_http1_body_frames.py checks bytes,
        state and errors against h11's own path.
        """
        conn = self._conn
        if conn.our_state is h11.SEND_BODY:
            writer = conn._writer
            if type(writer) is _ContentLengthWriter:
                remaining = writer._length - len(data)
                if remaining >= 0:
                    writer._length = remaining
                    return data
            elif type(writer) is _ChunkedWriter:
                return b"%x\r\n%b\r\n" % (len(data), data) if data else b""
            if self._bodiless:
                return b""
        try:
            return conn.send(h11.Data(data=data)) or b""
        except h11.LocalProtocolError as exc:
            raise ProtocolError(500, str(exc)) from None

    def _send_head(self, event: Event) -> bytes:
        raise NotImplementedError

    @property
    def _bodiless(self) -> bool:
        """Whether the message being sent has no body whatever its head says (a response to HEAD)."""
        return False

    @property
    def can_reuse(self) -> bool:
        """Both sides finished their message cleanly and keep-alive is on."""
        return self._conn.our_state is h11.DONE and self._conn.their_state is h11.DONE

    @property
    def trailing_data(self) -> bytes:
        """Bytes received past the message after a protocol switch (the 101 of an upgrade)."""
        return bytes(self._conn.trailing_data[0])

    @property
    def switched(self) -> bool:
        """Both sides agreed to switch protocols (a 101 answered an Upgrade request)."""
        return self._conn.our_state is h11.SWITCHED_PROTOCOL

    @property
    def their_message_done(self) -> bool:
        """Their whole message was received. A request that asked to switch protocols
        (`Upgrade`) is complete too: h11 holds it in MIGHT_SWITCH_PROTOCOL until our answer,
        and an answer other than 101 declines the switch and keeps the connection (RFC 9110
        §7.8), so a refused WebSocket or h2c upgrade is no reason to close."""
        state = self._conn.their_state
        return state is h11.DONE or state is _MIGHT_SWITCH

    @property
    def our_message_done(self) -> bool:
        return self._conn.our_state is h11.DONE


class ServerConnection(_Adapter):
    """The client-facing side of a connection: parses requests, serialises responses."""

    __slots__ = (
        "_awaiting_head",
        "_chunks",
        "_head",
        "_last_head",
        "_max_count",
        "_max_header",
        "_max_line",
        "_underscores",
    )

    def __init__(
        self,
        *,
        max_request_line: int = 8192,
        max_header_bytes: int = 32768,
        max_header_count: int = 100,
        underscore_headers: UnderscorePolicy = "delete",
    ) -> None:
        # h11's own cap on an incomplete event stays above ours, so our precise 414/431 fire first.
        super().__init__(h11.SERVER, max_request_line + max_header_bytes + 1024)
        self._max_line = max_request_line
        self._max_header = max_header_bytes
        self._max_count = max_header_count
        self._underscores = underscore_headers
        self._head = b""  # raw bytes of a request head not yet complete
        # The bytes holding a complete head that h11 has not turned into a request yet (read on
        # its errors only; dropped once it has, not to hold a read of up to 64 KiB per connection).
        self._last_head = b""
        self._awaiting_head = True
        self._chunks: ChunkedFraming | None = None  # the framing check of a chunked body being read

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes read from the socket (b"" at EOF); returns the events they complete."""
        if data:
            if self._awaiting_head:
                if not self._head and (data[0] == 13 or data[0] == 10):
                    data = data.lstrip(b"\r\n")  # RFC 9112 §2.2: empty lines before a request
                    if not data:
                        return []
                self._check_head(self._head + data if self._head else data)
            elif self._chunks is not None:
                self._check_chunks(data)
        else:
            self._eof = True
        self._conn.receive_data(data)
        return self._drain()

    def start_next_cycle(self) -> list[Event]:
        """Reset for the next request on this connection; returns events already buffered (pipelining)."""
        self._conn.start_next_cycle()
        self._awaiting_head = True
        self._chunks = None
        buffered = self._conn.trailing_data[0]
        if buffered[:1] == b"\r" or buffered[:1] == b"\n":
            # Empty lines between requests (RFC 9112 §2.2), already inside h11: drop them there.
            kept = buffered.lstrip(b"\r\n")
            self._conn._receive_buffer.maybe_extract_at_most(len(buffered) - len(kept))
            buffered = kept
        if buffered:
            self._check_head(buffered)
        return self._drain()

    def _check_chunks(self, data: bytes) -> None:
        """Run body bytes through the strict chunked framing; they may end with the next request."""
        assert self._chunks is not None
        try:
            self._chunks.feed(data)
        except FramingError as exc:
            raise ProtocolError(400, str(exc)) from None
        if self._chunks.done:
            self._chunks = None

    def _check_head(self, buf: bytes) -> int:
        """Check the head's limits and folds as far as `buf` goes; returns where the head ends
        once it is complete (the fast adapter reuses it), else how far `buf` goes."""
        # h11 rejects a request line starting with a control byte or space as soon as it sees
        # that first byte; check it before the length limits so the answer (400) does not
        # depend on how the bytes were split across reads.
        if buf and buf[0] < 0x21:
            raise ProtocolError(400, "illegal request line")
        end = _head_end(buf)
        line_end = buf.find(b"\n", 0, end if end >= 0 else len(buf))
        if end < 0:
            self._head = buf
            end = len(buf)
            if line_end < 0 and end > self._max_line + 1:  # + 1: a CR may be the last byte so far
                raise ProtocolError(414, "request line too long")
        else:
            self._head = b""
            self._last_head = buf
            self._awaiting_head = False
        if line_end > self._max_line + 1:  # + 1: the CR before the LF
            raise ProtocolError(414, "request line too long")
        if line_end >= 0:
            too_large = end - line_end > self._max_header + 2
            too_many = buf.count(b"\n", line_end + 1, end) > self._max_count + 1  # + 1: the blank line
            # RFC 9112 §5.2: obs-fold must be rejected (or replaced); a proxy rejects.
            space_fold, tab_fold = buf.find(b"\n ", line_end, end), buf.find(b"\n\t", line_end, end)
            if too_large or too_many or space_fold >= 0 or tab_fold >= 0:
                self._refuse_fields(buf, line_end, end, too_large, too_many, (space_fold, tab_fold))
        return end

    def _status_of(self, hint: int) -> int:
        if hint == 501:  # h11 refuses every Transfer-Encoding but exactly `chunked`
            return _refused_coding_status(self._last_head[: _head_end(self._last_head)])
        return super()._status_of(hint)

    def _refuse_fields(
        self, buf: bytes, line_end: int, end: int, too_large: bool, too_many: bool, folds: tuple[int, int]
    ) -> None:
        """Raise for the header section `buf[line_end:end]`: too large, too many fields, or a fold.

        When several are broken, the answer is the one whose offending byte comes first, so it
        does not depend on how the bytes were split across reads (a read that ends just after a
        fold must give the same answer as one that also holds the field over the count).
        """
        # For each violation: how much of the head shows it (its offending byte's end offset).
        found: list[tuple[int, int, str]] = []
        if too_large:
            found.append((line_end + self._max_header + 3, 431, "request header section too large"))
        if too_many:
            at = line_end
            for _ in range(self._max_count + 2):
                at = buf.index(b"\n", at + 1, end)
            found.append((at + 1, 431, "too many request header fields"))
        if max(folds) >= 0:
            found.append(
                (min(i for i in folds if i >= 0) + 2, 400, "obsolete line folding in header section")
            )
        _, status, message = min(found, key=lambda violation: violation[0])
        raise ProtocolError(status, message)

    def _head_event(self, ev: h11.Event) -> Event:
        assert isinstance(ev, h11.Request)
        self._last_head = b""
        # h11 keeps (raw name, lower-case name, value) triples; read them directly rather than
        # through its Sequence protocol, which costs a Python call per field.
        headers: HeaderList = [(name, value) for _, name, value in ev.headers._full_items]
        names = list(map(_name_of, headers))  # C-level scans below, no per-field Python code
        has_te = b"transfer-encoding" in names
        has_cl = b"content-length" in names
        if has_te and has_cl:
            raise ProtocolError(400, "both Content-Length and Transfer-Encoding")
        version = ev.http_version
        if version != b"1.1" and version != b"1.0":
            raise ProtocolError(400, "unsupported HTTP version")
        if has_te and version == b"1.0":
            raise ProtocolError(400, "Transfer-Encoding in an HTTP/1.0 request")
        if has_cl:  # h11 merged equal duplicates and refused differing ones
            has_cl = headers[names.index(b"content-length")][1] != b"0"
        elif has_te:  # h11 accepted it, so it is exactly `chunked`: follow its framing strictly
            self._chunks = ChunkedFraming()
            self._check_chunks(self._conn.trailing_data[0])  # the body bytes read with the head
        if b"".join(names).find(b"_") >= 0:  # not `in`: see _wire_safe
            fields = forwarded_fields(headers, self._underscores)
            if fields is None:
                raise ProtocolError(400, "header name with an underscore")
            headers = fields
            names = list(map(_name_of, headers))
        authority = headers[names.index(b"host")][1] if b"host" in names else b""
        target = ev.target
        if target[:1] != b"/":
            target, authority = _origin_form(ev.method, target, headers, authority)
        return RequestHead(1, ev.method, target, headers, version, b"http", authority, has_te or has_cl)

    def _send_head(self, event: Event) -> bytes:
        if type(event) is ResponseHead:
            reason = event.reason or _REASONS.get(event.status, b"")
            return self._send(_response_event(event.status, reason, event.headers))
        if type(event) is InformationalResponse:
            reason = _REASONS.get(event.status, b"")
            return self._send(
                h11.InformationalResponse(status_code=event.status, headers=event.headers, reason=reason)
            )
        raise TypeError(f"a server cannot send {type(event).__name__}")

    @property
    def _bodiless(self) -> bool:
        # RFC 9110 §9.3.2: a response to HEAD has no content, whatever its Content-Length or
        # Transfer-Encoding say (h11 frames it as empty). A body the handler still produced (a
        # JSON error, a backend's) is dropped here, as Envoy's codec does, so the response ends
        # cleanly and the connection carries on. Only reached once h11's writer has refused the
        # bytes: no cost on the per-chunk path.
        return self._conn._request_method == b"HEAD"

    @property
    def response_started(self) -> bool:
        """The response head went out (or the state machine failed): its status is decided."""
        state = self._conn.our_state
        return state is not h11.SEND_RESPONSE and state is not h11.IDLE

    @property
    def waiting_for_100_continue(self) -> bool:
        return self._conn.they_are_waiting_for_100_continue


def _refused_coding_status(head: bytes) -> int:
    """The answer to a Transfer-Encoding other than exactly `chunked`: 400 when it applies
    chunked twice or not last (RFC 9112 §6.1, §6.3: the length cannot be known), else 501, a
    coding we do not implement (§6.1), as nginx and Go answer."""
    codings: list[bytes] = []
    for line in head.split(b"\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.lower() == b"transfer-encoding":
            codings += [c.split(b";")[0].strip().lower() for c in value.split(b",") if c.strip()]
    chunked = codings.count(b"chunked")
    return 400 if chunked > 1 or (chunked and codings[-1] != b"chunked") else 501


def _origin_form(method: bytes, target: bytes, headers: HeaderList, authority: bytes) -> tuple[bytes, bytes]:
    """RFC 9112 §3.2: absolute-form targets carry the authority, which then replaces Host."""
    if target == b"*" and method == b"OPTIONS":
        return target, authority
    lower = target[:8].lower()
    if lower.startswith(b"http://") or lower.startswith(b"https://"):
        rest = target[target.index(b"//") + 2 :]
        slash = rest.find(b"/")
        query = rest.find(b"?")
        cut = min(i for i in (slash, query, len(rest)) if i >= 0)
        authority, path = rest[:cut], rest[cut:]
        if not authority or b"@" in authority:
            raise ProtocolError(400, "invalid absolute-form request target")
        headers[:] = [(n, authority if n == b"host" else v) for n, v in headers]
        if not any(n == b"host" for n, _ in headers):  # HTTP/1.0 may send none: routing needs it
            headers.insert(0, (b"host", authority))
        return (path if path[:1] == b"/" else b"/" + path), authority
    raise ProtocolError(400, "unsupported request target form")


class ClientConnection(_Adapter):
    """The upstream side: serialises requests, parses responses. Parse errors are 502."""

    __slots__ = ()
    _error_status = 502

    def __init__(self, *, max_head_bytes: int = 65536) -> None:
        super().__init__(h11.CLIENT, max_head_bytes)

    def receive_data(self, data: bytes) -> list[Event]:
        if not data:
            self._eof = True
        self._conn.receive_data(data)
        return self._drain()

    def start_clean_cycle(self) -> bool:
        """Reset for the next request when both sides finished their message, keep-alive is on
        and nothing follows the response in the buffer; False, changing nothing, otherwise.

        Bytes past the response (a HEAD answered with a body, a second response) answer no
        request: the connection must not be reused. (h11's buffer is read directly: its
        `trailing_data` copies it, and `bool()` on it costs two calls.)
        """
        conn = self._conn
        if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE or conn._receive_buffer._data:
            return False
        conn.start_next_cycle()
        return True

    def _head_event(self, ev: h11.Event) -> Event:
        if isinstance(ev, h11.InformationalResponse):
            return InformationalResponse(1, ev.status_code, list(ev.headers))
        assert isinstance(ev, h11.Response)
        headers: HeaderList = [(name, value) for _, name, value in ev.headers._full_items]
        names = list(map(_name_of, headers))
        if b"transfer-encoding" in names and b"content-length" in names:
            # RFC 9112 §6.3: a response framed both ways is a splitting attempt or a broken server.
            raise ProtocolError(502, "upstream response has both Content-Length and Transfer-Encoding")
        return ResponseHead(1, ev.status_code, headers, ev.http_version, ev.reason)

    def _send_head(self, event: Event) -> bytes:
        if type(event) is RequestHead:
            return self._send(_request_event(event.method, event.target, event.headers))
        raise TypeError(f"a client cannot send {type(event).__name__}")
