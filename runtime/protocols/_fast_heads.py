"""The head work of http1_fast.py: the scans that prove a head plain, h11's framing rules on
normalised fields, and heads written by joining byte strings. Pure functions of bytes."""

from __future__ import annotations

import re
from collections.abc import Collection
from operator import itemgetter

from ..events import HeaderList
from .http1 import _ready

# Body framing (besides a Content-Length, a count >= 0).
_CHUNKED, _UNTIL_CLOSE = -1, -2
# What the framing fields say besides a length or _CHUNKED (_field_length, _sent_length): neither
# field; fields h11 would change or refuse, or that take a head off the usual path.
_UNFRAMED, _UNUSUAL = -3, -4
_TOKEN_CHARS = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# h11's field-vchar is [^\x00\s]; SP and HTAB may sit between them (a value is stripped first).
_NAME_CHARS = _TOKEN_CHARS + b"\x00"  # names are scanned joined by NUL
_VALUE_CHARS = bytes(b for b in range(256) if b not in b"\x00\n\r\x0b\x0c")
_TARGET_CHARS = bytes(range(0x21, 0x7F))  # h11's request-target: 1*VCHAR
_VERSIONS = {b"HTTP/1.1": b"1.1", b"HTTP/1.0": b"1.0"}
# A status line h11 reads as llhttp does: version, three digits, a reason of field-value bytes.
_STATUS_LINE = re.compile(rb"HTTP/(1\.[01]) ([0-9]{3})(?: ([^\x00\n\r\x0b\x0c]*))?\r\n")
_MAX_CONTENT_LENGTH_DIGITS = 20  # h11's CONTENT_LENGTH_MAX_DIGITS

_name_of = itemgetter(0)
_value_of = itemgetter(1)
_Triples = list[tuple[bytes, bytes, bytes]]
_FRAMING_NAMES = (b"content-length", b"transfer-encoding")
# The fields that make a request more than a plain GET to the fast path: one scan of the names
# (a set's isdisjoint) rules them all out for the usual request.
_SPECIAL_REQUEST_NAMES = frozenset((*_FRAMING_NAMES, b"connection", b"upgrade", b"expect"))


def _plain_lines(head: bytes) -> int:
    """The number of CRLF-ended lines of `head` when every line ends in CRLF with no whitespace
    before it (h11 strips what llhttp keeps); -1 otherwise."""
    crlfs = head.count(b"\r\n")
    # find, not `in`: `in` on bytes costs a discarded TypeError on CPython 3.11 (http1.py _wire_safe).
    if (
        head.count(b"\n") != crlfs
        or head.count(b"\r") != crlfs
        or head.find(b" \r\n") >= 0
        or head.find(b"\t\r\n") >= 0
    ):
        return -1
    return crlfs


def _lowered(raw: Collection[bytes], values: list[bytes]) -> tuple[list[bytes], list[bytes], bytes] | None:
    """(lower-case names, values, the lower-case names joined by NUL) of llhttp's fields (their
    names as read, their values), or None if h11's grammar refuses one."""
    joined = b"\x00".join(raw)
    if joined.translate(None, _NAME_CHARS) or b"" in raw:
        return None
    if b"".join(values).translate(None, _VALUE_CHARS):
        return None
    lowered = joined.lower()
    return (lowered.split(b"\x00") if raw else []), values, lowered


def _field_length(names: list[bytes], values: list[bytes]) -> int:
    """What the framing fields say when h11's normalisation would leave them as they are (at
    most one Content-Length of digits or one Transfer-Encoding `chunked`, not both): the
    Content-Length, `_CHUNKED`, or `_UNFRAMED` when there is neither; `_UNUSUAL` otherwise."""
    if b"content-length" in names:
        if b"transfer-encoding" in names or names.count(b"content-length") != 1:
            return _UNUSUAL
        length = values[names.index(b"content-length")]
        return int(length) if length.isdigit() and len(length) <= _MAX_CONTENT_LENGTH_DIGITS else _UNUSUAL
    if b"transfer-encoding" in names:
        if names.count(b"transfer-encoding") == 1 and values[names.index(b"transfer-encoding")] == b"chunked":
            return _CHUNKED
        return _UNUSUAL
    return _UNFRAMED


def _body_length(method: bytes | None, status: int, length: int) -> int:
    """`_framing` from what the framing fields say (`_field_length`)."""
    if status and (
        status in (204, 304) or method == b"HEAD" or (method == b"CONNECT" and 200 <= status < 300)
    ):
        return 0
    if length == _UNFRAMED:
        return _UNTIL_CLOSE if status else 0
    return length


# Fields whose presence takes a head off the usual path: they change the framing, the
# connection's fate or the protocol, or h11 writes them first (Host, when not already first).
_UNUSUAL_OUT_NAMES = frozenset((b"transfer-encoding", b"connection", b"upgrade"))


def _sent_length(headers: HeaderList, names: list[bytes]) -> int:
    """For fields h11 would send as they are (http1.py `_ready`) and that hold no
    Transfer-Encoding, Connection or Upgrade: their Content-Length, or `_UNFRAMED` when they
    have none. `_UNUSUAL` for any other fields (the caller then takes the general path)."""
    if not _UNUSUAL_OUT_NAMES.isdisjoint(names) or not _ready(headers, names):
        return _UNUSUAL
    if b"content-length" not in names:
        return _UNFRAMED
    return int(headers[names.index(b"content-length")][1])  # digits, one field (`_ready`)


# What h11's field-value grammar refuses in values with no CR, LF or NUL (`_ready` proved that):
# whitespace at either end (values are joined between NULs), a vertical tab, a form feed.
_BAD_VALUE = re.compile(rb"\x00[ \t]|[ \t]\x00|[\x0b\x0c]")


def _values_valid(headers: HeaderList, names: list[bytes], skip: bytes) -> bool:
    """Whether the values of `headers` (wire-safe), but those of the `skip` fields, match h11's
    field-value grammar (h11 checks them whenever it rebuilds a response's fields)."""
    values = (
        [value for name, (_, value) in zip(names, headers, strict=False) if name != skip]
        if skip in names
        else list(map(_value_of, headers))
    )
    return _BAD_VALUE.search(b"\x00%b\x00" % b"\x00".join(values)) is None


def _tokens(headers: HeaderList, names: list[bytes], name: bytes) -> list[bytes]:
    """h11's get_comma_header: the lower-case, stripped, non-empty comma-separated values."""
    out: list[bytes] = []
    if name in names:
        for found, (_, value) in zip(names, headers, strict=True):
            if found == name:
                out += [part.strip() for part in value.lower().split(b",") if part.strip()]
    return out


def _closes(headers: HeaderList, names: list[bytes]) -> bool:
    """`b"close" in _tokens(headers, names, b"connection")`, without the per-token loop when a
    single Connection field does not hold `close` at all (`Connection: keep-alive`)."""
    if b"connection" not in names:
        return False
    if names.count(b"connection") == 1 and headers[names.index(b"connection")][1].lower().find(b"close") < 0:
        return False
    return b"close" in _tokens(headers, names, b"connection")


def _framing(method: bytes | None, status: int, headers: HeaderList, names: list[bytes]) -> int:
    """h11's _body_framing: how long the body of a message is (status 0: a request). The
    framing fields are normalised (one Content-Length of digits, Transfer-Encoding `chunked`)."""
    if status and (
        status in (204, 304) or method == b"HEAD" or (method == b"CONNECT" and 200 <= status < 300)
    ):
        return 0
    if b"transfer-encoding" in names:
        return _CHUNKED
    if b"content-length" in names:
        return int(headers[names.index(b"content-length")][1])
    return _UNTIL_CLOSE if status else 0


def _split_triples(triples: _Triples) -> tuple[HeaderList, list[bytes]]:
    """h11's (raw name, name, value) fields as (raw name, value) pairs and the names."""
    return [(raw, value) for raw, _, value in triples], [name for _, name, _ in triples]


def _write_head(first: bytes, headers: HeaderList, names: list[bytes]) -> bytes:
    """A head: the `first` line, the fields (Host first, as h11 writes them), the blank line,
    joined from the byte strings as they are."""
    if b"host" in names and (names[0] != b"host" or names.count(b"host") > 1):
        headers = [f for n, f in zip(names, headers, strict=True) if n == b"host"] + [
            f for n, f in zip(names, headers, strict=True) if n != b"host"
        ]
    return _joined_head(first, headers)


def _joined_head(first: bytes, headers: HeaderList) -> bytes:
    """A head of the `first` line and the fields in their order, joined as they are."""
    return b"\r\n".join([first, *map(b": ".join, headers), b"", b""])


def _without(
    headers: HeaderList, names: list[bytes], drop: tuple[bytes, ...]
) -> tuple[HeaderList, list[bytes]]:
    kept = [i for i, name in enumerate(names) if name not in drop]
    return [headers[i] for i in kept], [names[i] for i in kept]
