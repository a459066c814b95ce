"""Go string literals, as Traefik reads rule arguments (`strconv.Unquote`).

A raw string (backticks) is taken as written, minus carriage returns. An interpreted string
(double quotes) has Go's escapes: `\\a \\b \\f \\n \\r \\t \\v \\\\ \\"`, `\\ooo` (three octal digits,
at most 255), `\\xhh`, `\\uhhhh` and `\\Uhhhhhhhh`; any other escape is an error. Octal and `\\x`
escapes are bytes, so a value may hold bytes that are not UTF-8: they are kept as surrogate
escapes (`str.encode("utf-8", "surrogateescape")` gives the bytes back).
"""

from __future__ import annotations

__all__ = ["GoStringError", "unquote"]

_SIMPLE = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}
_HEX = frozenset("0123456789abcdefABCDEF")


class GoStringError(ValueError):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset  # into the literal, quotes included


def unquote(literal: str) -> str:
    """The value of a Go string literal (with its quotes)."""
    if literal.startswith("`"):
        return literal[1:-1].replace("\r", "")
    body = literal[1:-1]
    if "\\" not in body:
        return body
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode("utf-8", "surrogatepass")
            i += 1
            continue
        i = _escape(body, i, out)
    return out.decode("utf-8", "surrogateescape")


def _escape(body: str, i: int, out: bytearray) -> int:
    """Decode the escape at body[i] into `out`; return the index after it."""
    c = body[i + 1]
    if c in _SIMPLE:
        out.append(_SIMPLE[c])
        return i + 2
    if c in "01234567":
        digits = body[i + 1 : i + 4]
        if len(digits) < 3 or any(d not in "01234567" for d in digits):
            raise GoStringError("invalid octal escape: it takes three octal digits", i + 1)
        value = int(digits, 8)
        if value > 255:
            raise GoStringError(f"octal escape value {value} > 255", i + 1)
        out.append(value)
        return i + 4
    width = {"x": 2, "u": 4, "U": 8}.get(c)
    if width is None:
        raise GoStringError(
            f"unknown escape sequence \\{c} (regexps are easier in backticks, where \\ is literal)", i + 1
        )
    digits = body[i + 2 : i + 2 + width]
    if len(digits) < width or any(d not in _HEX for d in digits):
        raise GoStringError(f"invalid escape: \\{c} takes {width} hex digits", i + 1)
    value = int(digits, 16)
    if c == "x":
        out.append(value)
    elif value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
        raise GoStringError(f"escape \\{c}{digits} is not a valid Unicode code point", i + 1)
    else:
        out += chr(value).encode("utf-8")
    return i + 2 + width
