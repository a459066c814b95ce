"""Environment interpolation inside string literals: `${VAR}`, `${VAR:-default}`, `$${`.

Configuration may read the environment at compile time, and only there: the compiled IR holds
the resolved text, so a running gateway never consults its environment again. The syntax is the
shell's, restricted to what a config needs:

- `${NAME}` is the value of `NAME`; unset is an error naming the variable at its `$`.
- `${NAME:-default}` is the value of `NAME`, or `default` when `NAME` is unset *or empty*
  (the shell's `:-`). The default runs to the first `}` and cannot contain `"` or a newline.
- `$${` is a literal `${` (HCL's own escape), so `"$${HOME}"` stays `${HOME}`.
- Any other `${...}` (`${var.x}`, `${1 + 2}`) is an HCL template expression, which the gateway
  does not evaluate; it is reported as unsupported rather than passed through silently.

This module is pure: text in, pieces out, no I/O and no knowledge of HCL's parse tree. Offsets
are 0-based positions in the text handed in; the caller adds the literal's own position.
With `escapes=True` (quoted HCL strings) a backslash and the character after it are kept as
literal text, so `\\${X}` is not a reference: the caller unescapes literal text afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "REFERENCE",
    "Interpolated",
    "InterpolationError",
    "Piece",
    "Reference",
    "Text",
    "Unsupported",
    "interpolate",
    "match_reference",
    "resolve",
    "split_template",
    "unset_error",
    "unsupported_error",
]

REFERENCE = re.compile(r"\$\{[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*(?::-([^}\"\n]*))?\}")
"""`${NAME}` or `${NAME:-default}`; group 1 is the name, group 2 the default (or None)."""
_SPECIAL = re.compile(r"\$\$?\{")
_SPECIAL_WITH_ESCAPES = re.compile(r"\\|\$\$?\{")


@dataclass(frozen=True, slots=True)
class Text:
    """Literal text (still escaped, when the caller asked for `escapes`)."""

    text: str
    start: int


@dataclass(frozen=True, slots=True)
class Reference:
    """`${name}` or `${name:-default}` between `start` (the `$`) and `end`."""

    name: str
    default: str | None
    start: int
    end: int
    default_start: int | None = None


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A `${...}` that is not an environment reference: an HCL expression we do not evaluate."""

    source: str
    start: int
    closed: bool


Piece = Text | Reference | Unsupported


@dataclass(frozen=True, slots=True)
class InterpolationError:
    message: str
    offset: int
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class Interpolated:
    value: str
    errors: tuple[InterpolationError, ...]


def match_reference(text: str, pos: int) -> Reference | None:
    """The environment reference starting at `text[pos]`, or None when there is none."""
    m = REFERENCE.match(text, pos)
    if m is None:
        return None
    default_start = m.start(2) if m.group(2) is not None else None
    return Reference(m.group(1), m.group(2), m.start(), m.end(), default_start)


def split_template(text: str, *, escapes: bool = False) -> list[Piece]:
    """Cut `text` into literal text, references and unsupported `${...}`, in order."""
    special = _SPECIAL_WITH_ESCAPES if escapes else _SPECIAL
    pieces: list[Piece] = []
    start = i = 0
    while (m := special.search(text, i)) is not None:
        i = m.start()
        if m.group() == "\\":
            i += 2  # the escaped character stays in the literal text
            continue
        if i > start:
            pieces.append(Text(text[start:i], start))
        if m.group() == "$${":
            pieces.append(Text("${", i))
            i += 3
        else:
            piece = _reference_or_unsupported(text, i)
            pieces.append(piece)
            i = piece.end if isinstance(piece, Reference) else i + len(piece.source)
        start = i
    if start < len(text):
        pieces.append(Text(text[start:], start))
    return pieces


def _reference_or_unsupported(text: str, i: int) -> Reference | Unsupported:
    ref = match_reference(text, i)
    if ref is not None:
        return ref
    close = text.find("}", i)
    if close < 0:
        return Unsupported(text[i:], i, closed=False)
    return Unsupported(text[i : close + 1], i, closed=True)


def resolve(ref: Reference, env: Mapping[str, str]) -> str | None:
    """The value of `ref` in `env`, its default when unset or empty, None when neither exists."""
    value = env.get(ref.name)
    if ref.default is not None and not value:
        return ref.default
    return value


def unset_error(ref: Reference, offset: int = 0) -> InterpolationError:
    return InterpolationError(
        f"environment variable '{ref.name}' is not set",
        ref.start + offset,
        hint=f"set {ref.name}, or give a default: ${{{ref.name}:-value}}",
    )


def unsupported_error(piece: Unsupported, offset: int = 0) -> InterpolationError:
    if not piece.closed:
        return InterpolationError("unclosed '${': expected '}'", piece.start + offset)
    return InterpolationError(
        f"only literal values are supported: '{piece.source}' is an HCL template expression",
        piece.start + offset,
        hint="write ${NAME} or ${NAME:-default} to read an environment variable; $${ is a literal ${",
    )


def interpolate(text: str, env: Mapping[str, str]) -> Interpolated:
    """Resolve every reference in `text` against `env`; errors carry offsets into `text`.

    Text without `${` comes back unchanged. An unresolvable reference leaves its source text in
    the value (so the result is still printable) and adds an error.
    """
    out: list[str] = []
    errors: list[InterpolationError] = []
    for piece in split_template(text):
        if isinstance(piece, Text):
            out.append(piece.text)
        elif isinstance(piece, Reference):
            value = resolve(piece, env)
            if value is None:
                errors.append(unset_error(piece))
                value = text[piece.start : piece.end]
            out.append(value)
        else:
            errors.append(unsupported_error(piece))
            out.append(piece.source)
    return Interpolated("".join(out), tuple(errors))
