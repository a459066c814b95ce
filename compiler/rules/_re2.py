"""Go (RE2) regular expressions, translated into Python `re` patterns that mean the same thing.

Traefik compiles HostRegexp, PathRegexp, HeaderRegexp, QueryRegexp and HostSNIRegexp with Go's
`regexp` package and matches with `MatchString`: an unanchored search. Python's `re` reads much
of the same text differently, so patterns are never handed over as written. This module parses
the RE2 syntax (Go's `regexp/syntax`, Perl flags) and emits an equivalent Python pattern:

- `$` is the end of the text in Go (Python's `$` also matches before a final newline): `\\Z`;
  `^` is `\\A`; under `(?m)` both become scoped `(?m:^)` / `(?m:$)`.
- Flags `(?i)`, `(?m)`, `(?s)` and `(?U)` may appear anywhere in Go and last until the end of
  the enclosing group, across `|`. Python only takes scoped flags there, so every atom is
  emitted with the flags in force at that point (`(?i:a)`, `(?s:.)`); `U` swaps greediness.
- `\\d \\s \\w \\b` are ASCII-only in Go: emitted as explicit classes (Go's `\\s` has no `\\v`).
- `[[:alpha:]]`, `\\Q...\\E`, octal `\\123`, `\\x{10FFFF}` and `(?<name>...)` are rewritten.
- A `{` that does not start a valid repeat (`a{,3}`, `{x}`) is a literal in Go: it is escaped.
- Captures become non-capturing groups: nothing reads them, and Go allows names Python does not.

What Go rejects is rejected with Go's reason (lookarounds, backreferences, possessive `*+`,
`\\Z`, `\\C`, repeat counts over 1000, ...). Unicode classes (`\\pL`, `\\p{Greek}`) have no Python
equivalent and are rejected as unsupported.

Matching: the translation validates and explains, but requests are matched by google-re2 (the RE2
library Go's engine is modelled on) compiled from the original pattern, so matching time stays
linear in the input even for patterns like `^(a+)+$` on hostile requests. Where the google-re2
wheel is not available the translated Python pattern is used instead (same matches, but Python's
backtracking engine); docs/rules.md says so.
"""

from __future__ import annotations

import functools
import re
from typing import Protocol

from ._charclass import MAX_RUNE, PERL, POSIX, Ranges, class_text, fold_ascii, negate

__all__ = ["Re2Error", "SearchPattern", "compile_re2"]

try:  # linear-time matching; the Python fallback keeps the package importable without the wheel
    import re2 as _google_re2
except ImportError:  # pragma: no cover - the wheel is a declared dependency
    _google_re2 = None


class SearchPattern(Protocol):
    def search(self, text: str) -> object | None: ...


_FOLD, _MULTILINE, _DOTNL, _UNGREEDY = 1, 2, 4, 8
_FLAG_BITS = {"i": _FOLD, "m": _MULTILINE, "s": _DOTNL, "U": _UNGREEDY}
_MAX_REPEAT = 1000
_MAX_DEPTH = 200

# The counted repeats (`{n,m}`) nested inside an atom: (count, repeats inside it).
Repeats = tuple[tuple[int, "Repeats"], ...]

_W = "[0-9A-Za-z_]"
_WORD_BOUNDARY = f"(?:(?<={_W})(?!{_W})|(?<!{_W})(?={_W}))"
_NOT_WORD_BOUNDARY = f"(?:(?<={_W})(?={_W})|(?<!{_W})(?!{_W}))"
_SIMPLE_ESCAPES = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}
_ASSERTIONS = frozenset({r"\A", r"\Z", "(?m:^)", "(?m:$)", _WORD_BOUNDARY, _NOT_WORD_BOUNDARY})


class Re2Error(ValueError):
    """A pattern Go would reject (or one we cannot translate): what is wrong and where."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@functools.lru_cache(maxsize=1024)
def compile_re2(pattern: str) -> SearchPattern:
    """Compile a Go regexp for matching with `.search` (an unanchored match, as Go's MatchString)."""
    translated = translate_re2(pattern)
    if _google_re2 is not None:
        try:
            compiled: SearchPattern = _google_re2.compile(pattern)
            return compiled
        except Exception:  # a construct RE2 reads differently from Go: the translation is exact
            pass
    return re.compile(translated)


def translate_re2(pattern: str) -> str:
    """Validate a Go regexp (raising Re2Error with Go's reason) and return the Python equivalent."""
    if any(0xD800 <= ord(c) <= 0xDFFF for c in pattern):
        raise Re2Error("invalid UTF-8", 0)
    translated = _Translator(pattern).translate()
    try:
        re.compile(translated)
    except re.error as exc:  # a translation bug, never the user's fault
        raise Re2Error(f"cannot translate this regexp ({exc})", 0) from exc
    return translated


class _Atom:
    """One emitted piece, with the counted repeats nested inside it (for Go's size check)."""

    __slots__ = ("folded", "quantified", "repeats", "text")

    def __init__(
        self, text: str, repeats: Repeats = (), *, folded: bool = False, quantified: bool = False
    ) -> None:
        self.text = text
        self.repeats = repeats
        self.folded = folded  # the whole text is one `(?i:...)` group, so neighbours can share it
        self.quantified = quantified  # ends with a quantifier: `a*` repeated again must be `(?:a*)*`


class _Translator:
    def __init__(self, pattern: str) -> None:
        self.s = pattern
        self.i = 0
        self.flags = 0
        self.depth = 0

    def translate(self) -> str:
        text, _ = self._alternation()
        if self.i < len(self.s):  # only a ')' stops an alternation early
            raise Re2Error("unexpected )", self.i)
        return text

    # -- structure ---------------------------------------------------------------------------

    def _alternation(self) -> tuple[str, Repeats]:
        branches: list[str] = []
        repeats: list[tuple[int, Repeats]] = []
        while True:
            atoms = self._concat()
            branches.append(_join(atoms))
            for atom in atoms:
                repeats.extend(atom.repeats)
            if self.i < len(self.s) and self.s[self.i] == "|":
                self.i += 1
                continue
            return "|".join(branches), tuple(repeats)

    def _concat(self) -> list[_Atom]:
        atoms: list[_Atom] = []
        last_was_repeat = False
        while self.i < len(self.s) and self.s[self.i] not in "|)":
            start = self.i
            quantifier = self._quantifier()
            if quantifier is not None:
                lo, hi, lazy = quantifier
                if last_was_repeat:
                    raise Re2Error(f"invalid nested repetition operator: `{self.s[start : self.i]}`", start)
                if not atoms:
                    raise Re2Error(
                        f"missing argument to repetition operator: `{self.s[start : self.i]}`", start
                    )
                atoms[-1] = self._repeat(atoms[-1], lo, hi, lazy, start)
                last_was_repeat = True
                continue
            atoms.extend(self._atom())
            last_was_repeat = False
        return atoms

    def _quantifier(self) -> tuple[int, int, bool] | None:
        """Parse `*`, `+`, `?` or a valid `{n,m}` (plus a lazy `?`); None when there is none."""
        s, i = self.s, self.i
        c = s[i]
        if c in "*+?":
            lo, hi = {"*": (0, -1), "+": (1, -1), "?": (0, 1)}[c]
            end = i + 1
        elif c == "{":
            counted = _parse_repeat(s, i)
            if counted is None:
                return None  # a literal '{'
            lo, hi, end = counted
            if lo < 0 or lo > _MAX_REPEAT or hi > _MAX_REPEAT or (hi >= 0 and lo > hi):
                raise Re2Error(f"invalid repeat count: `{s[i:end]}`", i)
        else:
            return None
        lazy = end < len(s) and s[end] == "?"
        self.i = end + 1 if lazy else end
        return lo, hi, lazy

    def _repeat(self, atom: _Atom, lo: int, hi: int, lazy: bool, at: int) -> _Atom:
        # Go repeats an assertion (`^*`) or a repetition separated by flags (`a*(?i)*`); Python needs a group.
        body = f"(?:{atom.text})" if atom.quantified or atom.text in _ASSERTIONS else atom.text
        if (lo, hi) == (0, -1):
            op = "*"
        elif (lo, hi) == (1, -1):
            op = "+"
        elif (lo, hi) == (0, 1) and self.s[at] == "?":
            op = "?"
        else:
            op = f"{{{lo}}}" if lo == hi else f"{{{lo},}}" if hi < 0 else f"{{{lo},{hi}}}"
        if lazy != bool(self.flags & _UNGREEDY):
            op += "?"
        repeats = atom.repeats
        if self.s[at] == "{":
            repeats = ((hi if hi >= 0 else lo, atom.repeats),)
            if (lo >= 2 or hi >= 2) and not _repeat_is_valid(repeats, _MAX_REPEAT):
                raise Re2Error(f"invalid repeat count: `{self.s[at : self.i]}`", at)
        return _Atom(body + op, repeats, quantified=True)

    def _atom(self) -> list[_Atom]:
        s, i = self.s, self.i
        c = s[i]
        if c == "(":
            return self._group()
        if c == "[":
            return [self._class_atom()]
        self.i += 1
        if c == ".":
            return [_Atom("(?s:.)" if self.flags & _DOTNL else ".")]
        if c == "^":
            return [_Atom("(?m:^)" if self.flags & _MULTILINE else r"\A")]
        if c == "$":
            return [_Atom("(?m:$)" if self.flags & _MULTILINE else r"\Z")]
        if c == "\\":
            return self._escape_atom(i)
        return [self._literal(ord(c))]

    def _group(self) -> list[_Atom]:
        start, s, saved = self.i, self.s, self.flags
        self.i += 1
        if s.startswith("(?P<", start) or s.startswith("(?<", start):
            self._capture_name(start)  # Go reads lookbehinds `(?<=` as a (bad) capture name too
        elif s.startswith("(?", start) and self._perl_flags(start):
            return []  # (?flags): no atom; the flags hold until the enclosing group closes
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise Re2Error("expression nests too deeply", start)
        inner, repeats = self._alternation()
        if self.i >= len(s):
            raise Re2Error(f"missing closing ): `{s[start:]}`", start)
        self.i += 1  # ')'
        self.depth -= 1
        self.flags = saved
        return [_Atom(f"(?:{inner})", repeats)]

    def _capture_name(self, start: int) -> None:
        s = self.s
        open_at = s.index("<", start)
        end = s.find(">", open_at)
        if end < 0:
            raise Re2Error(f"invalid named capture: `{s[start:]}`", start)
        name = s[open_at + 1 : end]
        if not name or not all(ch == "_" or (ch.isascii() and ch.isalnum()) for ch in name):
            raise Re2Error(f"invalid named capture: `{s[start : end + 1]}`", start)
        self.i = end + 1

    def _perl_flags(self, start: int) -> bool:
        """Parse `(?flags)` (True: no group follows) or `(?flags:` (False: a group follows)."""
        s = self.s
        i = start + 2
        flags, sign, saw_flag = self.flags, 1, False
        while i < len(s):
            c = s[i]
            i += 1
            if c in _FLAG_BITS:
                flags = flags | _FLAG_BITS[c] if sign > 0 else flags & ~_FLAG_BITS[c]
                saw_flag = True
            elif c == "-" and sign > 0:
                sign, saw_flag = -1, False
            elif c in ":)" and (sign > 0 or saw_flag):
                self.i = i
                self.flags = flags
                return c == ")"
            else:
                break
        raise Re2Error(f"invalid or unsupported Perl syntax: `{s[start:i]}`", start)

    # -- escapes -----------------------------------------------------------------------------

    def _escape_atom(self, at: int) -> list[_Atom]:
        s = self.s
        if self.i >= len(s):
            raise Re2Error("trailing backslash at end of expression", at)
        c = s[self.i]
        simple = {"A": r"\A", "z": r"\Z", "b": _WORD_BOUNDARY, "B": _NOT_WORD_BOUNDARY}
        if c in simple:
            self.i += 1
            return [_Atom(simple[c])]
        if c == "Q":
            end = s.find(r"\E", self.i + 1)
            literal = s[self.i + 1 :] if end < 0 else s[self.i + 1 : end]
            self.i = len(s) if end < 0 else end + 2
            return [self._literal(ord(ch)) for ch in literal]
        if c in "pP":
            raise Re2Error(f"Unicode classes such as `\\{c}...` are not supported; write the range out", at)
        if c.lower() in PERL:
            self.i += 1
            return [self._class_text(self._perl_class(c), negated=False)]
        return [self._literal(self._escaped_rune(at))]

    def _perl_class(self, c: str) -> Ranges:
        ranges = PERL[c.lower()]
        return negate(self._folded(ranges)) if c.isupper() else ranges

    def _escaped_rune(self, at: int) -> int:
        """The character of `\\...` at self.i - 1 (Go's parseEscape); advances past it."""
        s = self.s
        if self.i >= len(s):
            raise Re2Error("trailing backslash at end of expression", at)
        c = s[self.i]
        self.i += 1
        if c.isascii() and not c.isalnum():
            return ord(c)
        if (c in "1234567" and self.i < len(s) and s[self.i] in "01234567") or c == "0":
            value, digits = int(c), 1
            while digits < 3 and self.i < len(s) and s[self.i] in "01234567":
                value, digits = value * 8 + int(s[self.i]), digits + 1
                self.i += 1
            return value
        if c == "x":
            return self._hex_escape(at)
        if c in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[c]
        raise Re2Error(f"invalid escape sequence: `\\{c}`", at)

    def _hex_escape(self, at: int) -> int:
        s = self.s
        if self.i < len(s) and s[self.i] == "{":
            end = s.find("}", self.i)
            digits = s[self.i + 1 : end] if end > 0 else ""
            if end < 0 or not digits or not all(ch in "0123456789abcdefABCDEF" for ch in digits):
                raise Re2Error("invalid escape sequence: `\\x{...}` needs hex digits", at)
            value = int(digits, 16)
            if value > MAX_RUNE:
                raise Re2Error(f"invalid escape sequence: `\\x{{{digits}}}`", at)
            self.i = end + 1
            return value
        digits = s[self.i : self.i + 2]
        if len(digits) < 2 or not all(ch in "0123456789abcdefABCDEF" for ch in digits):
            raise Re2Error("invalid escape sequence: `\\x` needs two hex digits", at)
        self.i += 2
        return int(digits, 16)

    # -- classes -----------------------------------------------------------------------------

    def _class_atom(self) -> _Atom:
        s, start = self.s, self.i
        self.i += 1
        negated = self.i < len(s) and s[self.i] == "^"
        if negated:
            self.i += 1
        ranges: Ranges = []
        first = True
        while first or (self.i < len(s) and s[self.i] != "]"):
            if self.i >= len(s):
                break
            first = False
            ranges.extend(self._class_item())
        if self.i >= len(s):
            raise Re2Error(f"missing closing ]: `{s[start:]}`", start)
        self.i += 1
        return self._class_text(ranges, negated)

    def _class_item(self) -> Ranges:
        s, at = self.s, self.i
        if s.startswith("[:", at):
            end = s.find(":]", at + 2)
            if end >= 0:
                name = s[at + 2 : end]
                negated = name.startswith("^")
                ranges = POSIX.get(name.removeprefix("^"))
                if ranges is None:
                    raise Re2Error(f"invalid character class range: `{s[at : end + 2]}`", at)
                self.i = end + 2
                return negate(self._folded(ranges)) if negated else ranges
        if s[at] == "\\" and at + 1 < len(s):
            c = s[at + 1]
            if c in "pP":
                raise Re2Error(
                    f"Unicode classes such as `\\{c}...` are not supported; write the range out", at
                )
            if c.lower() in PERL:
                self.i += 2
                return self._perl_class(c)
        lo = self._class_char()
        if self.i + 1 < len(s) and s[self.i] == "-" and s[self.i + 1] != "]":
            self.i += 1
            hi = self._class_char()
            if hi < lo:
                raise Re2Error(f"invalid character class range: `{s[at : self.i]}`", at)
            return [(lo, hi)]
        return [(lo, lo)]

    def _class_char(self) -> int:
        s, at = self.s, self.i
        if s[at] == "\\":
            self.i += 1
            return self._escaped_rune(at)
        self.i += 1
        return ord(s[at])

    def _folded(self, ranges: Ranges) -> Ranges:
        return fold_ascii(ranges) if self.flags & _FOLD else ranges

    def _class_text(self, ranges: Ranges, negated: bool) -> _Atom:
        text = class_text(ranges, negated)
        return _Atom(f"(?i:{text})", folded=True) if self.flags & _FOLD else _Atom(text)

    def _literal(self, code: int) -> _Atom:
        text = re.escape(chr(code))
        ch = chr(code)
        if self.flags & _FOLD and (ch.lower() != ch or ch.upper() != ch):
            return _Atom(f"(?i:{text})", folded=True)
        return _Atom(text)


def _join(atoms: list[_Atom]) -> str:
    """Concatenate atoms, sharing one `(?i:...)` between neighbours: `(?i:ab)`, not `(?i:a)(?i:b)`."""
    out: list[str] = []
    run: list[str] = []
    for atom in atoms:
        if atom.folded:
            run.append(atom.text[4:-1])
            continue
        if run:
            out.append(f"(?i:{''.join(run)})")
            run = []
        out.append(atom.text)
    if run:
        out.append(f"(?i:{''.join(run)})")
    return "".join(out)


def _parse_repeat(s: str, i: int) -> tuple[int, int, int] | None:
    """`{n}`, `{n,}` or `{n,m}` at s[i] as (min, max, end); max -1 = unbounded; None = literal."""
    lo, j = _parse_int(s, i + 1)
    if lo is None or j >= len(s):
        return None
    hi = lo
    if s[j] == ",":
        j += 1
        if j >= len(s):
            return None
        if s[j] == "}":
            hi = -1
        else:
            upper, j = _parse_int(s, j)
            if upper is None:
                return None
            hi = upper
            if hi < 0:
                lo = -1
    if j >= len(s) or s[j] != "}":
        return None
    return lo, hi, j + 1


def _parse_int(s: str, j: int) -> tuple[int | None, int]:
    """Go's parseInt: digits without a leading zero; -1 when too big."""
    start = j
    while j < len(s) and "0" <= s[j] <= "9":
        j += 1
    digits = s[start:j]
    if not digits or (len(digits) >= 2 and digits[0] == "0"):
        return None, start
    return (int(digits) if len(digits) <= 8 else -1), j


def _repeat_is_valid(repeats: Repeats, budget: int) -> bool:
    """Go's repeatIsValid: nested counted repeats may not exceed 1000 copies of the innermost."""
    for count, inner in repeats:
        if count == 0:
            continue
        if count > budget:
            return False
        if not _repeat_is_valid(inner, budget // count):
            return False
    return True
