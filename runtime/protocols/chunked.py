"""A strict reading of a chunked request body's framing (RFC 9112 §7.1), beside h11.

h11 decodes chunked bodies, but leniently where a proxy must not be: it accepts any bytes after
a `;` as chunk extensions, and a bare LF ending the trailer section. When two parsers on a path
disagree on where a chunk ends, a request can be hidden inside another (the "funky chunks"
family of smuggling attacks). So the server adapter runs every byte of a chunked request body
through `ChunkedFraming` before h11 sees it, and refuses (400, then close) at the first byte
that breaks the grammar, without waiting for more data: a client that sends a bad chunk line
and then stalls is answered at once, not at a timeout.

    chunked-body   = *chunk last-chunk trailer-section CRLF
    chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
    chunk-size     = 1*HEXDIG
    chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
    chunk-ext-name = token
    chunk-ext-val  = token / quoted-string

Accepted beyond the grammar, as Go (Traefik), nginx and h11 accept it: whitespace between the
size (or the last extension) and the CRLF. Refused short of it, as h11 refuses it: whitespace
between the size and the first `;`. Refused: a size that is not hex or does not fit in 63
bits (nginx's limit, an off_t); a line ended by a bare LF or a CR without LF; anything but CRLF
right after the chunk data; an extension that is not `;name` or `;name=value` with token or
quoted-string values; a chunk line over 4096 bytes (Go's limit); and in the trailer section a
bare LF or an obs-fold continuation line (RFC 9112 §5.2). The trailer fields themselves are
h11's to validate.

Theory of operation: the chunk line is read byte by byte through a transition table (state x
byte class -> state); chunk data is skipped by count, never looked at; trailer lines are
scanned with `find`. Only chunk lines cost Python work per byte, a handful per chunk, and the
usual line (a size and CRLF, whole in one read) and the CRLF after the data are each taken in
one C-level step: the table is walked only for extensions, whitespace, errors and lines split
across reads. Once the
final CRLF is read, `feed` returns how many bytes of its input belong to the body: the rest is
the next pipelined request, which is not ours to judge.
"""

from __future__ import annotations

import re

__all__ = ["ChunkedFraming", "FramingError"]

_MAX_SIZE = 1 << 63
_MAX_LINE = 4096
# The usual chunk line: up to 15 hex digits (below _MAX_SIZE, so no overflow check) and CRLF.
_PLAIN_LINE = re.compile(rb"([0-9A-Fa-f]{1,15})\r\n")

# Byte classes.
_HEX, _TCHAR, _SEMI, _EQ, _WS, _DQUOTE, _BACKSLASH, _CR, _LF, _VCHAR, _OBS, _CTL = range(12)


def _classes() -> bytes:
    table = bytearray([_CTL]) * 256
    for byte in range(0x21, 0x7F):
        table[byte] = _VCHAR
    for byte in b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ":
        table[byte] = _TCHAR  # RFC 9110 §5.6.2
    for byte in b"0123456789abcdefABCDEF":
        table[byte] = _HEX
    for byte in range(0x80, 0x100):
        table[byte] = _OBS
    for byte, cls in ((0x3B, _SEMI), (0x3D, _EQ), (0x20, _WS), (0x09, _WS), (0x22, _DQUOTE)):
        table[byte] = cls
    for byte, cls in ((0x5C, _BACKSLASH), (0x0D, _CR), (0x0A, _LF)):
        table[byte] = cls
    return bytes(table)


_CLASS = _classes()

# Chunk-line states.
(
    _SIZE_START,  # nothing of the line yet
    _SIZE,  # in the hex digits
    _SIZE_WS,  # whitespace after the size: only the CR may follow
    _BWS,  # whitespace after an extension; a ";" or the CR may follow
    _NAME_START,  # after ";": whitespace, then an extension name
    _NAME,
    _AFTER_NAME,  # whitespace after a name: "=", ";" or the CR may follow
    _VALUE_START,  # after "=": whitespace, then a token or a quoted string
    _TOKEN_VALUE,
    _QUOTED,
    _QUOTED_PAIR,  # after a backslash inside a quoted string
    _LINE_CR,  # the CR ending the line was read
) = range(12)
_ERROR = -1

_TOKEN = (_HEX, _TCHAR)
_QDTEXT = (_HEX, _TCHAR, _SEMI, _EQ, _WS, _VCHAR, _OBS)  # RFC 9110 §5.6.4, less " and \


def _table() -> tuple[tuple[int, ...], ...]:
    rows = [[_ERROR] * 12 for _ in range(12)]

    def on(state: int, classes: tuple[int, ...] | int, target: int) -> None:
        for cls in classes if isinstance(classes, tuple) else (classes,):
            rows[state][cls] = target

    on(_SIZE_START, _HEX, _SIZE)
    on(_SIZE, _HEX, _SIZE)
    for state in (_SIZE, _BWS, _NAME, _AFTER_NAME, _TOKEN_VALUE):
        on(state, _SEMI, _NAME_START)
        on(state, _CR, _LINE_CR)
    on(_SIZE, _WS, _SIZE_WS)
    on(_SIZE_WS, _WS, _SIZE_WS)
    on(_SIZE_WS, _CR, _LINE_CR)
    on(_BWS, _WS, _BWS)
    on(_NAME_START, _WS, _NAME_START)
    on(_NAME_START, _TOKEN, _NAME)
    on(_NAME, _TOKEN, _NAME)
    on(_NAME, _WS, _AFTER_NAME)
    on(_NAME, _EQ, _VALUE_START)
    on(_AFTER_NAME, _WS, _AFTER_NAME)
    on(_AFTER_NAME, _EQ, _VALUE_START)
    on(_VALUE_START, _WS, _VALUE_START)
    on(_VALUE_START, _TOKEN, _TOKEN_VALUE)
    on(_VALUE_START, _DQUOTE, _QUOTED)
    on(_TOKEN_VALUE, _TOKEN, _TOKEN_VALUE)
    on(_TOKEN_VALUE, _WS, _BWS)
    on(_QUOTED, _QDTEXT, _QUOTED)
    on(_QUOTED, _BACKSLASH, _QUOTED_PAIR)
    on(_QUOTED, _DQUOTE, _BWS)
    on(_QUOTED_PAIR, (*_QDTEXT, _DQUOTE, _BACKSLASH), _QUOTED)  # HTAB / SP / VCHAR / obs-text
    return tuple(tuple(row) for row in rows)


_NEXT = _table()

# Body phases around the chunk lines.
_LINE, _DATA, _DATA_CR, _DATA_LF, _TRAILER_START, _TRAILER_FIELD, _TRAILER_LF, _END_LF, _DONE = range(9)


class FramingError(Exception):
    """The chunked body broke RFC 9112 §7.1: answer 400 and close."""


class ChunkedFraming:
    """Follows one chunked request body; `feed` raises FramingError at its first bad byte."""

    __slots__ = ("_line_bytes", "_line_state", "_phase", "_remaining", "_size")

    def __init__(self) -> None:
        self._phase = _LINE
        self._line_state = _SIZE_START
        self._line_bytes = 0
        self._size = 0
        self._remaining = 0

    @property
    def done(self) -> bool:
        return self._phase == _DONE

    def feed(self, data: bytes) -> int:
        """Check the next bytes of the body; returns how many of them belong to it (all of them
        until the body's final CRLF, which may be followed by the next request)."""
        i, end = 0, len(data)
        while i < end:
            phase = self._phase
            if phase == _DATA:
                step = min(self._remaining, end - i)
                self._remaining -= step
                i += step
                if not self._remaining:
                    if data[i : i + 2] == b"\r\n":  # the CRLF after the data, all here
                        self._phase, i = _LINE, i + 2
                    else:
                        self._phase = _DATA_CR
            elif phase == _LINE:
                plain = _PLAIN_LINE.match(data, i) if self._line_state == _SIZE_START else None
                if plain is not None:
                    self._end_line(int(plain[1], 16))
                    i = plain.end()
                else:
                    i = self._line(data, i, end)
            elif phase == _TRAILER_FIELD:
                i = self._trailer_field(data, i, end)
            elif phase == _DONE:
                return i
            else:
                self._phase = self._expect(phase, data[i])
                i += 1
        return i

    def _line(self, data: bytes, i: int, end: int) -> int:
        """Chunk-line bytes from `i`: returns where the line ended (or `end`)."""
        state, size, start = self._line_state, self._size, i
        while i < end:
            byte = data[i]
            cls = _CLASS[byte]
            if state == _LINE_CR:
                if cls != _LF:
                    raise FramingError("chunk line has a CR without LF")
                i += 1
                self._count(i - start)
                self._end_line(size)
                return i
            nxt = _NEXT[state][cls]
            if nxt == _ERROR:
                raise FramingError(_line_error(state, cls))
            if nxt == _SIZE:
                size = size * 16 + int(chr(byte), 16)
                if size >= _MAX_SIZE:
                    raise FramingError("chunk size overflows")
            state = nxt
            i += 1
        self._count(i - start)
        self._line_state, self._size = state, size
        return i

    def _count(self, n: int) -> None:
        self._line_bytes += n
        if self._line_bytes > _MAX_LINE:
            raise FramingError("chunk line too long")

    def _end_line(self, size: int) -> None:
        self._line_state, self._size, self._line_bytes = _SIZE_START, 0, 0
        if size:
            self._phase, self._remaining = _DATA, size
        else:
            self._phase = _TRAILER_START  # last-chunk

    def _expect(self, phase: int, byte: int) -> int:
        """The single-byte phases: the CRLF after chunk data, and the trailer section's CR/LFs."""
        if phase in (_DATA_CR, _DATA_LF):
            if byte != (0x0D if phase == _DATA_CR else 0x0A):
                raise FramingError("chunk data not followed by CRLF")
            return _DATA_LF if phase == _DATA_CR else _LINE
        if phase == _TRAILER_START:
            if byte == 0x0D:
                return _END_LF
            if byte == 0x0A:
                raise FramingError("trailer section ended by a bare LF")
            if byte == 0x20 or byte == 0x09:
                raise FramingError("obsolete line folding in trailer section")
            return _TRAILER_FIELD
        if byte != 0x0A:  # _TRAILER_LF, _END_LF
            raise FramingError("trailer section has a CR without LF")
        return _TRAILER_START if phase == _TRAILER_LF else _DONE

    def _trailer_field(self, data: bytes, i: int, end: int) -> int:
        cr = data.find(b"\r", i, end)
        lf = data.find(b"\n", i, cr if cr >= 0 else end)
        if lf >= 0:
            raise FramingError("trailer field line ended by a bare LF")
        if cr < 0:
            return end
        self._phase = _TRAILER_LF
        return cr + 1


def _line_error(state: int, cls: int) -> str:
    if cls == _LF:
        return "chunk line ended by a bare LF"
    if state in (_SIZE_START, _SIZE):
        return "chunk size is not hex"
    return "invalid chunk extension"
