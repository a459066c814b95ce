"""HTTP/1.1 on llhttp (through httptools): the adapter of http1.py, with its behaviour and a C parser.

`FastServerConnection` and `FastClientConnection` have the interface, the events and the answers
of http1.py's `ServerConnection` and `ClientConnection`; h11 stays the reference, and
property_tests/test_http1_differential.py feeds both the same bytes, split anywhere, and
compares events, refusals and connection state. The speed comes from three places:

* heads are split by llhttp, in C, into a dict with no Python call per field (_fast_fields.py);
* their checks are C-level scans (`count`, `translate`, `in`, a set's `isdisjoint`) over the
  whole head, each done once: the usual head (a GET with Host, a response with a length on a
  keep-alive connection) skips the checks that only matter for the others;
* heads are written by joining byte strings, and the state h11 keeps in a table of objects is
  two small integers here (its transitions are reproduced in `_settle`, called only when one
  can fire).

Theory of operation. A head is *plain* when the scans prove that llhttp's reading of it is
h11's: only CRLF line ends, no whitespace before a CRLF, an `HTTP/1.1` or `HTTP/1.0` line,
token names, values h11's grammar accepts, at most one Content-Length (digits) and one
Transfer-Encoding (exactly `chunked`), not both. Anything else is judged by h11 itself:

* a request head that is not plain, or that proposes a protocol switch (`Upgrade`, CONNECT) or
  waits for `100 Continue` (`Expect`), hands the connection over to http1.py's adapter with
  the bytes not yet consumed: it is at the start of a message, where the two are in the same
  state, so whatever h11 answers (an event, a 400, a 501) is the answer;
* a response head that is not plain is read by h11's own head reader (a pure function);
* a request that proposes a switch goes out through http1.py's adapter, which then reads the
  answer (a 101 hands the connection over, which h11's state machine follows).

llhttp is stricter than h11 in places (methods it does not know, control bytes in values):
there it raises, and the head goes to h11. It is laxer in others (whitespace after a value,
a bare LF, a second Content-Length): the scans send those to h11 before llhttp's reading is
used. Chunked bodies are decoded by h11's ChunkedReader, after the strict framing check
(chunked.py) on requests, exactly as http1.py does. Body bytes of a sized message are sliced
here, never parsed.
"""

from __future__ import annotations

from typing import Literal

import h11
import httptools
from h11._readers import ChunkedReader, maybe_read_from_SEND_RESPONSE_server
from h11._receivebuffer import ReceiveBuffer

from ..events import (
    Event,
    HeaderList,
    InformationalResponse,
    RequestHead,
    Reset,
    ResponseHead,
)
from ._fast_fields import _PARSE_ERRORS, _FieldDict, _split_fields
from ._fast_heads import (
    _CHUNKED,
    _FRAMING_NAMES,
    _SPECIAL_REQUEST_NAMES,
    _STATUS_LINE,
    _TARGET_CHARS,
    _TOKEN_CHARS,
    _UNTIL_CLOSE,
    _UNUSUAL,
    _VERSIONS,
    _body_length,
    _closes,
    _field_length,
    _framing,
    _joined_head,
    _name_of,
    _plain_lines,
    _sent_length,
    _split_triples,
    _tokens,
    _values_valid,
    _without,
    _write_head,
)
from ._fast_state import _DONE, _ERROR, _IDLE, _SEND_BODY, _SEND_RESPONSE, _STATE_OF, _Fast
from .chunked import ChunkedFraming, FramingError
from .http1 import (
    _REASONS,
    ClientConnection,
    ProtocolError,
    ServerConnection,
    _head_end,
    _origin_form,
    _ready,
    _refused_coding_status,
    _request_event,
    _response_event,
)
from .underscores import UnderscorePolicy, forwarded_fields

__all__ = ["FastClientConnection", "FastServerConnection"]

_REQUEST_VERSIONS = {b" " + line: version for line, version in _VERSIONS.items()}
# A response head read: status, reason, version, fields, their (lower-case) names, what its
# framing fields say (_field_length; _UNUSUAL when h11 read it).
_Parsed = tuple[int, bytes, bytes, HeaderList, list[bytes], int]


class FastServerConnection(_Fast):
    """The client-facing side: parses requests (llhttp), serialises responses."""

    __slots__ = (
        "_awaiting_head",
        "_chunks",
        "_field_dict",
        "_head",
        "_last_head",
        "_max_count",
        "_max_header",
        "_max_line",
        "_parser",
        "_quick_lines",
        "_quick_size",
        "_their_version",
        "_underscores",
    )

    _usual_head = ResponseHead
    _us = _STATE_OF["_server"]
    _them = _STATE_OF["_client"]

    def __init__(
        self,
        *,
        max_request_line: int = 8192,
        max_header_bytes: int = 32768,
        max_header_count: int = 100,
        underscore_headers: UnderscorePolicy = "delete",
    ) -> None:
        super().__init__(max_request_line + max_header_bytes + 1024)
        self._max_line = max_request_line
        self._max_header = max_header_bytes
        self._max_count = max_header_count
        self._underscores = underscore_headers
        # A head this short is within the request line's and the header section's limits,
        # and one of this many lines within the field count (see _quick_request).
        self._quick_size = min(max_request_line, max_header_bytes)
        self._quick_lines = max_header_count + 2
        self._head = b""
        self._last_head = b""
        self._awaiting_head = True
        self._chunks: ChunkedFraming | None = None
        self._parser: httptools.HttpRequestParser | None = None
        self._field_dict = _FieldDict()
        self._their_version: bytes | None = None

    # The head limits and their answers are http1.py's, shared as they are.
    # (Plain functions of the attributes they read, which this class has too.)
    _check_head = ServerConnection._check_head
    _refuse_fields = ServerConnection._refuse_fields

    def _status_of(self, hint: int) -> int:
        if hint == 501:
            return _refused_coding_status(self._last_head[: _head_end(self._last_head)])
        return super()._status_of(hint)

    # ------------------------------------------------------------------ receiving

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes read from the socket (b"" at EOF); returns the events they complete."""
        if self._delegate is not None:
            return self._delegate.receive_data(data)
        if not data:
            if self._client == _IDLE and self._head:
                self._eof = True
                self._client = _ERROR  # h11: the peer closed mid-head
                self._settle()
                return [Reset(1)]
            return self._eof_events()
        client = self._client
        if client == _IDLE:
            if not self._head and (data[0] == 13 or data[0] == 10):
                data = data.lstrip(b"\r\n")  # RFC 9112 §2.2: empty lines before a request
                if not data:
                    return []
            return self._head_data(self._head + data if self._head else data)
        if client == _SEND_BODY:
            out: list[Event] = []
            if self._chunks is not None:
                self._check_chunks(data)
            self._past_message(self._body(data, out))
            return out
        if client == _DONE:
            self._pending += data
            return []
        raise self._refused("Got data when expecting EOF")

    def _check_chunks(self, data: bytes) -> None:
        assert self._chunks is not None
        try:
            self._chunks.feed(data)
        except FramingError as exc:
            raise ProtocolError(400, str(exc)) from None
        if self._chunks.done:
            self._chunks = None

    def _head_data(self, buf: bytes) -> list[Event]:
        end = buf.find(b"\n\r\n") + 3  # the head's end, if it proves plain (see _quick_request)
        request = self._quick_request(buf, end) if 3 <= end <= self._quick_size else False
        if request is False:  # not complete, or near a limit, or not plain: checked in full
            end = self._check_head(buf)  # type: ignore[misc]  # http1.py's, see above
            if self._awaiting_head:
                return []
            head = buf[:end]
            request = self._request(head, _plain_lines(head))
        if request is None:
            return self._hand_over(buf)
        out: list[Event] = [request]
        rest = buf[end:]
        if self._reader is not None:
            self._chunks = ChunkedFraming()
            self._check_chunks(rest)
        elif not rest and not self._remaining:  # a request without a body, alone in `buf`
            self._message_received(out)
            return out
        self._past_message(self._body(rest, out))
        return out

    def _quick_request(self, buf: bytes, end: int) -> RequestHead | Literal[False] | None:
        """`_request` for a complete head of at most `_quick_size` bytes that is plain, has no
        obs-fold and no more lines than the field count allows: what `_check_head` checks, with
        the scans `_plain_lines` makes anyway. False (nothing done) for any other head.

        `buf[:end]` ends at the first `\n\r\n`; when it is plain (no LF without its CR) it
        holds no `\n\n` either, so that is where `_head_end` ends the head too."""
        head = buf[:end]
        lines = _plain_lines(head)
        if not (
            buf[0] > 0x20  # _check_head's first test
            and 0 <= lines <= self._quick_lines
            and head.find(b"\n ") < 0  # no obs-fold (RFC 9112 §5.2)
            and head.find(b"\n\t") < 0
        ):
            return False
        self._head = b""
        self._awaiting_head = False
        return self._request(head, lines)

    def _hand_over(self, buf: bytes) -> list[Event]:
        """Give the connection, at the start of this message, to h11 (see the module docstring)."""
        self._delegate = ServerConnection(
            max_request_line=self._max_line,
            max_header_bytes=self._max_header,
            max_header_count=self._max_count,
            underscore_headers=self._underscores,
        )
        events = self._delegate.receive_data(buf)
        if self._eof:
            events += self._delegate.receive_data(b"")
        return events

    def _request(self, head: bytes, lines: int) -> RequestHead | None:
        """The request of a plain head (of `lines` lines, -1 if not plain), its framing set up;
        None when h11 must judge it."""
        if lines < 0:
            return None
        read = self._field_dict
        read.by_name.clear()
        parser = self._parser
        if parser is None:
            parser = self._parser = httptools.HttpRequestParser(read)
        try:
            parser.feed_data(head)
        except _PARSE_ERRORS:
            self._parser = None
            return None
        # llhttp read `method SP target SP version CRLF`, its method one it knows (letters and
        # `-`, then one space): the target is what lies between that space and the version,
        # when it is one run of VCHARs (h11's request-target), as llhttp's URL then is.
        line_end = head.index(b"\r\n")
        space = head.find(b" ")
        method = head[:space]
        target = head[space + 1 : line_end - 9]
        version = _REQUEST_VERSIONS.get(head[line_end - 9 : line_end])  # with the space before
        split = _split_fields(read, httptools.HttpRequestParser, head, lines)
        if (
            split is None
            or version is None
            or not target
            or target.translate(None, _TARGET_CHARS)
            or method == b"CONNECT"
        ):
            self._parser = None
            return None
        names, values, joined = split
        hosts = names.count(b"host")
        if hosts > 1 or (not hosts and version == b"1.1"):
            self._parser = None
            return None
        headers: HeaderList = list(zip(names, values, strict=True))
        if _SPECIAL_REQUEST_NAMES.isdisjoint(names):  # the usual request: no framing, no switch
            framed = False
            self._remaining = 0
        elif (
            b"upgrade" in names
            or b"expect" in names
            or _field_length(names, values) == _UNUSUAL
            or (version == b"1.0" and b"transfer-encoding" in names)
        ):
            self._parser = None
            return None
        else:
            framed = self._framed(headers, names, values)
        self._last_head = b""
        self._method = method
        self._their_version = version
        if version != b"1.1":
            self._keep_alive = False
        self._client = _SEND_BODY
        self._server = _SEND_RESPONSE
        if joined.find(b"_") >= 0:  # not `in`: see http1.py _wire_safe
            headers = self._underscored(headers)
            names = list(map(_name_of, headers))
            authority = headers[names.index(b"host")][1] if b"host" in names else b""
        else:
            authority = values[names.index(b"host")] if hosts else b""
        if target[0] != 47:  # not `/`
            target, authority = _origin_form(method, target, headers, authority)
        return RequestHead(1, method, target, headers, version, b"http", authority, framed)

    def _framed(self, headers: HeaderList, names: list[bytes], values: list[bytes]) -> bool:
        """Set up the body of a request with framing or Connection fields (proven plain);
        whether it has a body."""
        if _closes(headers, names):
            self._keep_alive = False
        if b"transfer-encoding" in names:
            self._reader = (ChunkedReader(), ReceiveBuffer())
            self._parser = None  # llhttp is not fed the body: a new parser for the next head
            return True
        if b"content-length" in names:
            length = values[names.index(b"content-length")]
            self._remaining = int(length)
            if self._remaining:
                self._parser = None
            return length != b"0"
        self._remaining = 0
        return False

    def _underscored(self, headers: HeaderList) -> HeaderList:
        """The fields of a head whose field names hold `_`, as the entrypoint's policy has them."""
        fields = forwarded_fields(headers, self._underscores)
        if fields is None:
            raise ProtocolError(400, "header name with an underscore")
        return fields

    def start_next_cycle(self) -> list[Event]:
        """Reset for the next request on this connection; returns events already buffered (pipelining)."""
        if self._delegate is not None:
            assert isinstance(self._delegate, ServerConnection)
            return self._delegate.start_next_cycle()
        if self._client != _DONE or self._server != _DONE:  # can_reuse
            raise ProtocolError(500, "not in a reusable state")
        self._client = self._server = _IDLE
        self._method = self._their_version = None
        self._awaiting_head = True
        self._chunks = None
        buffered, self._pending = self._pending.lstrip(b"\r\n"), b""
        if not buffered:
            return self._closed() if self._eof else []
        events = self._head_data(buffered)
        if self._eof and self._delegate is None:
            # EOF came with these bytes: what h11 makes of it once they are read.
            if self._awaiting_head or self._client == _SEND_BODY:
                self._client = _ERROR
                self._settle()
                events.append(Reset(1))
            elif not self._pending:
                events += self._closed()
        return events

    # ------------------------------------------------------------------ sending

    def _send_head(self, event: Event) -> bytes:
        if type(event) is ResponseHead:
            return self._send_response(event)
        if type(event) is InformationalResponse:
            return self._send_informational(event)
        raise TypeError(f"a server cannot send {type(event).__name__}")

    def _send_response(self, event: ResponseHead) -> bytes:
        status = event.status
        reason = event.reason or _REASONS.get(status, b"")
        headers = event.headers
        names = list(map(_name_of, headers))
        if (
            self._keep_alive
            and self._server == _SEND_RESPONSE
            and 200 <= status < 1000
            and status != 204
            and status != 304
            and self._method != b"HEAD"
            and self._method != b"CONNECT"
            and b"host" not in names
        ):
            length = _sent_length(headers, names)
            if length >= 0:
                # The usual response: a length, on a connection that stays open. What follows
                # (h11's clean-up, the framing, the writing) would leave its fields as they are.
                self._writer = length
                self._server = _SEND_BODY
                return _joined_head(b"HTTP/1.1 %d %s" % (status, reason), headers)
        if not (200 <= status < 1000 and _ready(headers, names)):
            try:  # h11 normalises the fields (or refuses them) when it builds the event
                headers, names = _split_triples(_response_event(status, reason, headers).headers._full_items)
            except h11.LocalProtocolError as exc:
                raise ProtocolError(500, str(exc)) from None
        if self._server != _SEND_RESPONSE and self._server != _IDLE:
            raise self._fail("can't send a response in this state")
        headers, names, framing = self._cleaned(status, headers, names)
        if _closes(headers, names):
            self._keep_alive = False
        if self._method == b"HEAD":
            self._writer = 0
        elif framing >= 0:  # the framing fields went out as they were: the same framing
            self._writer = framing
        else:
            self._writer = _framing(self._method, status, headers, names)
        self._server = _SEND_BODY
        if not self._keep_alive:  # no transition leaves SEND_BODY on a keep-alive connection
            self._settle()
        return _write_head(b"HTTP/1.1 %d %s" % (status, reason), headers, names)

    def _cleaned(
        self, status: int, headers: HeaderList, names: list[bytes]
    ) -> tuple[HeaderList, list[bytes], int]:
        """h11's _clean_up_response_headers_for_sending: framing fields for the client's
        version, `Connection: close` when the connection ends with this response. The usual
        response (a length, keep-alive) comes back as it is. With the framing of the fields
        as they came (a response to HEAD framed as to GET)."""
        method = self._method
        framing = _framing(b"GET" if method == b"HEAD" else method, status, headers, names)
        need_close = False
        rebuilt = framing in (_CHUNKED, _UNTIL_CLOSE)
        if rebuilt:
            # h11 rebuilds the fields (set_comma_header), validating every value but those of
            # the Content-Length it drops first; `_ready` only proved them safe on the wire.
            if not _values_valid(headers, names, b"content-length"):
                raise self._fail("Illegal header value")
            headers, names = _without(headers, names, _FRAMING_NAMES)
            if self._their_version is None or self._their_version < b"1.1":
                need_close = method != b"HEAD"
            else:
                headers.append((b"Transfer-Encoding", b"chunked"))
                names.append(b"transfer-encoding")
        if not self._keep_alive or need_close:
            tokens = set(_tokens(headers, names, b"connection"))
            tokens.discard(b"keep-alive")
            tokens.add(b"close")
            headers, names = _without(headers, names, (b"connection",))
            headers += [(b"Connection", token) for token in sorted(tokens)]
            names += [b"connection"] * len(tokens)
            # h11 validates what it rebuilt: the old Connection values are gone (unless the
            # framing's rebuild checked them above), the new ones are checked.
            new = -len(tokens) if rebuilt else 0
            if not _values_valid(headers[new:], names[new:], b""):
                raise self._fail("Illegal header value")
        return headers, names, framing

    def _send_informational(self, event: InformationalResponse) -> bytes:
        reason = _REASONS.get(event.status, b"")
        try:
            info = h11.InformationalResponse(status_code=event.status, headers=event.headers, reason=reason)
        except h11.LocalProtocolError as exc:
            raise ProtocolError(500, str(exc)) from None
        if self._server != _SEND_RESPONSE or event.status == 101:
            # A 101 answers no proposal here: a request asking to switch went to h11.
            raise self._fail("can't send an informational response in this state")
        return _write_head(
            b"HTTP/1.1 %d %s" % (event.status, reason), *_split_triples(info.headers._full_items)
        )

    @property
    def _bodiless(self) -> bool:
        return self._method == b"HEAD"

    # ------------------------------------------------------------------ state, as http1.py reports it

    @property
    def response_started(self) -> bool:
        if self._delegate is not None:
            assert isinstance(self._delegate, ServerConnection)
            return self._delegate.response_started
        return self._server != _SEND_RESPONSE and self._server != _IDLE

    @property
    def waiting_for_100_continue(self) -> bool:
        # A request with `Expect` is h11's: this adapter never has one waiting.
        delegate = self._delegate
        return isinstance(delegate, ServerConnection) and delegate.waiting_for_100_continue


class FastClientConnection(_Fast):
    """The upstream side: serialises requests, parses responses (llhttp). Parse errors are 502."""

    __slots__ = ("_buf", "_field_dict")

    _error_status = 502
    _usual_head = RequestHead
    _us = _STATE_OF["_client"]
    _them = _STATE_OF["_server"]

    def __init__(self, *, max_head_bytes: int = 65536) -> None:
        super().__init__(max_head_bytes)
        self._buf = b""  # a response head not yet complete
        self._field_dict = _FieldDict()

    # ------------------------------------------------------------------ sending

    def _send_head(self, event: Event) -> bytes:
        if type(event) is not RequestHead:
            raise TypeError(f"a client cannot send {type(event).__name__}")
        method, target, headers = event.method, event.target, event.headers
        names = list(map(_name_of, headers))
        # h11's method_re (a token) and request_target_re (1*VCHAR), by C-level scans.
        line_valid = bool(
            method
            and target
            and not method.translate(None, _TOKEN_CHARS)
            and not target.translate(None, _TARGET_CHARS)
        )
        if (
            self._client == _IDLE
            and line_valid
            and names
            and names[0] == b"host"
            and names.count(b"host") == 1
            and method != b"CONNECT"
        ):
            length = _sent_length(headers, names)
            if length != _UNUSUAL:
                # The usual request: no switch, no Connection field, Host first, its framing
                # fields as h11 would send them. What follows would leave them as they are.
                self._method = method
                self._writer = length if length >= 0 else 0
                self._client = _SEND_BODY
                if self._server == _IDLE:
                    self._server = _SEND_RESPONSE
                if not self._keep_alive:
                    self._settle()
                return _joined_head(b"%s %s HTTP/1.1" % (method, target), headers)
        if not (line_valid and names.count(b"host") == 1 and _ready(headers, names)):
            try:  # h11 normalises the fields (or refuses them) when it builds the event
                headers, names = _split_triples(_request_event(method, target, headers).headers._full_items)
            except h11.LocalProtocolError as exc:
                raise ProtocolError(500, str(exc)) from None
        if self._client != _IDLE:
            raise self._fail("can't send a request in this state")
        if method == b"CONNECT" or (b"upgrade" in names and _tokens(headers, names, b"upgrade")):
            # A protocol switch: h11's state machine follows it (see the module docstring).
            self._delegate = ClientConnection(max_head_bytes=self._max_event)
            return self._delegate.send(event)
        if _closes(headers, names):
            self._keep_alive = False
        self._method = method
        self._writer = _framing(method, 0, headers, names)
        self._client = _SEND_BODY
        if self._server == _IDLE:
            self._server = _SEND_RESPONSE
        if not self._keep_alive:  # no transition leaves SEND_BODY on a keep-alive connection
            self._settle()
        return _write_head(b"%s %s HTTP/1.1" % (method, target), headers, names)

    # ------------------------------------------------------------------ receiving

    def receive_data(self, data: bytes) -> list[Event]:
        if self._delegate is not None:
            return self._delegate.receive_data(data)
        server = self._server
        if not data:
            if (server in (_SEND_RESPONSE, _IDLE)) and (self._buf or server == _SEND_RESPONSE):
                self._eof = True
                self._server = _ERROR  # h11: the peer closed before (or within) the head
                self._settle()
                return [Reset(1)]
            return self._eof_events()
        out: list[Event] = []
        if server in (_SEND_RESPONSE, _IDLE):
            rest = self._heads(self._buf + data if self._buf else data, out)
        elif server == _SEND_BODY:
            rest = self._body(data, out)
        elif server == _DONE:
            self._pending += data
            return out
        else:
            raise self._refused("Got data when expecting EOF")
        self._past_message(rest)
        return out

    def _heads(self, buf: bytes, out: list[Event]) -> bytes:
        """Read 1xx heads and the final head from `buf`, then as much of the body as is here."""
        while True:
            if buf[0] < 0x21:
                raise self._refused("illegal status line")
            end = _head_end(buf)
            if end < 0:
                if len(buf) > self._max_event:
                    raise self._refused("Receive buffer too long", 431)
                self._buf = buf
                return b""
            self._buf = b""
            head, buf = buf[:end], buf[end:]
            final = self._response(head, out)
            if final:
                return self._body(buf, out) if self._server == _SEND_BODY else buf
            if not buf:
                return b""

    def _response(self, head: bytes, out: list[Event]) -> bool:
        """Read one response head into `out`; whether it was the final one."""
        parsed = self._plain_response(head)
        if parsed is None:
            parsed = self._h11_response(head)
        status, reason, version, headers, names, length = parsed
        if status < 200:
            if status == 101 or self._server != _SEND_RESPONSE:
                raise self._refused("unexpected informational response")
            out.append(InformationalResponse(1, status, headers))
            return False
        self._server = _SEND_BODY
        if version < b"1.1" or _closes(headers, names):
            self._keep_alive = False
        if not self._keep_alive:  # no transition leaves SEND_BODY on a keep-alive connection
            self._settle()
        if length != _UNUSUAL:  # a plain head: its framing fields as they are (_field_length)
            framing = _body_length(self._method, status, length)
        elif b"transfer-encoding" in names and b"content-length" in names:
            # RFC 9112 §6.3: a response framed both ways is a splitting attempt or a broken server.
            raise self._refused("upstream response has both Content-Length and Transfer-Encoding")
        else:
            framing = _framing(self._method, status, headers, names)
        out.append(ResponseHead(1, status, headers, version, reason))
        if framing == _CHUNKED:
            self._reader = (ChunkedReader(), ReceiveBuffer())
        else:
            self._remaining = framing
            if framing == 0:
                self._message_received(out)
        return True

    def _plain_response(self, head: bytes) -> _Parsed | None:
        lines = _plain_lines(head)
        if lines < 0:
            return None
        status_line = _STATUS_LINE.match(head)
        if status_line is None:
            return None
        version, code, reason = status_line.groups(b"")
        read = self._field_dict
        read.by_name.clear()
        try:
            httptools.HttpResponseParser(read).feed_data(head)
        except _PARSE_ERRORS:
            return None
        split = _split_fields(read, httptools.HttpResponseParser, head, lines)
        if split is None:
            return None
        names, values, _ = split
        length = _field_length(names, values)
        if length == _UNUSUAL:
            return None
        return int(code), reason, version, list(zip(names, values, strict=True)), names, length

    def _h11_response(self, head: bytes) -> _Parsed:
        buf = ReceiveBuffer()
        buf += head
        try:
            ev = maybe_read_from_SEND_RESPONSE_server(buf)
        except h11.LocalProtocolError as exc:
            raise self._refused(str(exc), exc.error_status_hint) from None
        assert ev is not None
        headers = list(ev.headers)
        names = list(map(_name_of, headers))
        return ev.status_code, bytes(ev.reason), bytes(ev.http_version), headers, names, _UNUSUAL

    def start_clean_cycle(self) -> bool:
        """Reset for the next request when both sides finished their message, keep-alive is on
        and nothing follows the response; False, changing nothing, otherwise."""
        if self._delegate is not None:
            assert isinstance(self._delegate, ClientConnection)
            return self._delegate.start_clean_cycle()
        if self._client != _DONE or self._server != _DONE or self._pending:
            return False
        self._client = self._server = _IDLE
        self._method = None
        return True
