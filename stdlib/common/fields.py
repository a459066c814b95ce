"""Validation of HTTP field names and values written in configuration, and the hop-by-hop list.

Config models call these from pydantic validators so a header name with a space or a value with
a line break is a compile-time error at its file:line, never a malformed request at run time.
"""

from __future__ import annotations

import re

__all__ = ["FRAMING", "HOP_BY_HOP", "as_list", "check_field_name", "check_field_value", "hop_by_hop_names"]

# RFC 9110 §5.1: field-name = token; tchar is any VCHAR except delimiters.
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# RFC 9110 §5.5: a field value is visible characters, spaces and tabs (obs-text allowed).
_VALUE = re.compile(r"^[\t\x20-\x7e\x80-\xff]*$")

# RFC 9110 §7.6.1: fields meaningful only for one connection, never forwarded.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
     "te", "trailer", "transfer-encoding", "upgrade"}
)  # fmt: skip
# Fields that frame the message: a middleware editing them would corrupt the stream.
FRAMING = frozenset({"content-length", "transfer-encoding"})


def check_field_name(name: str) -> str:
    """`name` if it is a valid field name, else ValueError (used by config validators)."""
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"invalid header name {name!r}: use letters, digits and '-' (RFC 9110 token)")
    if name.startswith(":"):
        raise ValueError(f"{name!r} is a pseudo-header and cannot be set")
    return name


def check_field_value(name: str, value: str) -> str:
    if not _VALUE.fullmatch(value):
        raise ValueError(f"invalid value for header {name!r}: no line breaks or control characters")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"value for header {name!r} must be ASCII / latin-1 text") from None
    return value


def hop_by_hop_names(connection: str | None) -> frozenset[str]:
    """The hop-by-hop fields of a message: the fixed list plus those named in `Connection`."""
    if not connection:
        return HOP_BY_HOP
    named = {part.strip().lower() for part in connection.split(",") if part.strip()}
    return HOP_BY_HOP | named


def as_list(value: object) -> object:
    """A `mode="before"` validator's step: one string where a list is expected (`audience =
    "api"`) is a list of one."""
    return [value] if isinstance(value, str) else value
