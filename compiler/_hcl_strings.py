"""String and heredoc values: escapes, `${VAR}` interpolation and heredoc indentation.

The HCL front end hands over offsets into the original file text; the values are computed from
that text (never from python-hcl2's view of it, where references are masked), and every
problem is reported at its own offset: the backslash of a bad escape, the `$` of an unset
variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from .interpolate import (
    InterpolationError,
    Reference,
    Text,
    resolve,
    split_template,
    unset_error,
    unsupported_error,
)

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


class ErrorSink(Protocol):
    def __call__(
        self, offset: int, message: str, *, hint: str | None = None, code: str = "config"
    ) -> None: ...


class StringReader:
    """Reads string literals out of one file's text, reporting into `error`."""

    def __init__(self, text: str, env: Mapping[str, str], error: ErrorSink) -> None:
        self.text = text
        self.env = env
        self.error = error

    def quoted(self, start: int, end: int) -> str | None:
        """The value of a quoted string whose content (inside the quotes) is `text[start:end]`."""
        return self.template(self.text[start:end], start, escapes=True)

    def report(self, problem: InterpolationError) -> None:
        self.error(problem.offset, problem.message, hint=problem.hint, code="interpolation")

    def heredoc(self, start: int, end: int, *, trim: bool) -> str | None:
        """The value of the heredoc between `start` (its `<<`) and `end`."""
        raw = self.text[start:end]
        header_end = raw.index("\n") + 1
        closing = max(raw.rstrip("\r\n").rfind("\n") + 1, header_end)
        lines = _split_lines(raw[header_end:closing], start + header_end)
        indent = _common_indent([text for _, text in lines]) if trim else 0
        out: list[str] = []
        for offset, text in lines:
            cut = min(indent, len(text) - len(text.lstrip(" \t")))
            line = text[cut:-2] + "\n" if text.endswith("\r\n") else text[cut:]  # CRLF files give LF values
            value = self.template(line, offset + cut, escapes=False)
            if value is None:
                return None
            out.append(value)
        return "".join(out)

    def template(self, raw: str, offset: int, *, escapes: bool) -> str | None:
        """The value of string text `raw` found at `offset`: escapes, `${VAR}`, `$${`."""
        out: list[str] = []
        ok = True
        for piece in split_template(raw, escapes=escapes):
            if isinstance(piece, Text):
                text = self.literal(piece.text, offset + piece.start, escapes=escapes)
            elif isinstance(piece, Reference):
                text = self.reference(piece, offset, escapes=escapes)
            else:
                self.report(unsupported_error(piece, offset))
                text = None
            if text is None:
                ok = False
            else:
                out.append(text)
        return "".join(out) if ok else None

    def reference(self, ref: Reference, offset: int, *, escapes: bool) -> str | None:
        value = resolve(ref, self.env)
        if value is None:
            self.report(unset_error(ref, offset))
            return None
        if ref.default is not None and ref.default_start is not None and not self.env.get(ref.name):
            return self.literal(ref.default, offset + ref.default_start, escapes=escapes)
        return value

    def literal(self, text: str, offset: int, *, escapes: bool) -> str | None:
        """Unescape literal string text (`\\n`, `\\u00e9`, `%%{`) found at `offset`."""
        if "%" not in text and ("\\" not in text or not escapes):
            return text
        out: list[str] = []
        i = 0
        while i < len(text):
            c = text[i]
            if c == "\\" and escapes:
                decoded, width = _unescape(text, i)
                if decoded is None:
                    self.error(
                        offset + i,
                        f"invalid escape sequence '{text[i : i + width]}' in a string",
                        hint='escapes are \\n \\r \\t \\" \\\\ \\uNNNN \\UNNNNNNNN; write \\\\ for a backslash',
                        code="syntax",
                    )
                    return None
                out.append(decoded)
                i += width
            elif text.startswith("%%{", i):
                out.append("%{")
                i += 3
            elif text.startswith("%{", i):
                self.error(
                    offset + i,
                    "template directives (%{...}) are not supported",
                    hint="write %%{ for a literal %{",
                )
                return None
            else:
                out.append(c)
                i += 1
        return "".join(out)


def _unescape(text: str, i: int) -> tuple[str | None, int]:
    """Decode the escape at `text[i]` (a backslash): (character, width) or (None, width)."""
    selector = text[i + 1 : i + 2]
    if selector in _ESCAPES:
        return _ESCAPES[selector], 2
    digits = {"u": 4, "U": 8}.get(selector)
    if digits is None:
        return None, 2
    hex_digits = text[i + 2 : i + 2 + digits]
    if len(hex_digits) != digits or not all(c in "0123456789abcdefABCDEF" for c in hex_digits):
        return None, 2 + len(hex_digits)
    code = int(hex_digits, 16)
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None, 2 + digits
    return chr(code), 2 + digits


def _split_lines(text: str, offset: int) -> list[tuple[int, str]]:
    """Lines of `text` with their newlines kept, each with its offset in the file."""
    lines: list[tuple[int, str]] = []
    pos = 0
    while pos < len(text):
        newline = text.find("\n", pos)
        end = len(text) if newline < 0 else newline + 1
        lines.append((offset + pos, text[pos:end]))
        pos = end
    return lines


def _common_indent(lines: list[str]) -> int:
    """The smallest indentation of the non-blank lines (HCL's `<<-` removes that much)."""
    widths = [len(line) - len(line.lstrip(" \t")) for line in lines if line.strip()]
    return min(widths, default=0)
