"""How http1_fast.py reads a head's fields with llhttp (through httptools): each field straight
into a dict, with no Python call per field; a head naming a field twice read again into a list.
The fields come out as `_fast_heads._lowered` has them, checked against h11's grammar."""

from __future__ import annotations

import httptools

from ._fast_heads import _lowered, _name_of, _value_of

_PARSE_ERRORS = (httptools.HttpParserError, httptools.HttpParserUpgrade)
_Split = tuple[list[bytes], list[bytes], bytes]  # _lowered's


class _FieldDict:
    """llhttp's protocol object: all it is given is the fields, each straight into a dict by
    the dict's own (C) `__setitem__`, with no Python call per field. A head naming a field
    twice (the dict keeps one of them) is read again into a list (`_split_fields`)."""

    __slots__ = ("by_name", "on_header")

    def __init__(self) -> None:
        self.by_name: dict[bytes, bytes] = {}
        self.on_header = self.by_name.__setitem__


class _FieldList:
    """llhttp's protocol object for a head that names a field twice: every field, in order."""

    __slots__ = ("fields",)

    def __init__(self) -> None:
        self.fields: list[tuple[bytes, bytes]] = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name, value))


def _split_fields(
    read: _FieldDict,
    parser_type: type[httptools.HttpRequestParser | httptools.HttpResponseParser],
    head: bytes,
    lines: int,
) -> _Split | None:
    """The fields llhttp read into `read` from `head` (of `lines` CRLF-ended lines) as
    `_lowered` has them; None when a line is no field or h11's grammar refuses one."""
    by_name = read.by_name
    if len(by_name) == lines - 2:
        return _lowered(by_name, list(by_name.values()))
    listed = _FieldList()  # a name twice (or a line that is no field: then the count differs)
    try:
        parser_type(listed).feed_data(head)
    except _PARSE_ERRORS:
        return None
    fields = listed.fields
    if len(fields) != lines - 2:
        return None
    return _lowered(list(map(_name_of, fields)), list(map(_value_of, fields)))
