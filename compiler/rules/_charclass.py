"""Character classes for the RE2 translator: Go's ASCII classes as code-point ranges.

Classes are built as ranges and printed as explicit Python classes (every character escaped),
so Python never reads a set-operation or a Unicode meaning into them.
"""

from __future__ import annotations

__all__ = ["MAX_RUNE", "PERL", "POSIX", "Ranges", "class_text", "fold_ascii", "negate"]

MAX_RUNE = 0x10FFFF

Ranges = list[tuple[int, int]]

_WORD: Ranges = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
# Go's Perl classes are ASCII-only, and its \s has no \v.
PERL: dict[str, Ranges] = {"d": [(0x30, 0x39)], "s": [(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)], "w": _WORD}
POSIX: dict[str, Ranges] = {
    "alnum": [(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
    "alpha": [(0x41, 0x5A), (0x61, 0x7A)],
    "ascii": [(0x00, 0x7F)],
    "blank": [(0x09, 0x09), (0x20, 0x20)],
    "cntrl": [(0x00, 0x1F), (0x7F, 0x7F)],
    "digit": [(0x30, 0x39)],
    "graph": [(0x21, 0x7E)],
    "lower": [(0x61, 0x7A)],
    "print": [(0x20, 0x7E)],
    "punct": [(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
    "space": [(0x09, 0x0D), (0x20, 0x20)],
    "upper": [(0x41, 0x5A)],
    "word": _WORD,
    "xdigit": [(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
}


def fold_ascii(ranges: Ranges) -> Ranges:
    """ASCII ranges closed under Go's case folding (which also pairs k/K with U+212A, s/S with U+017F).

    Needed before negating a class under (?i): Go folds first, then negates.
    """
    extra: Ranges = []
    for lo, hi in ranges:
        for code in range(max(lo, 0x41), min(hi, 0x7A) + 1):
            ch = chr(code)
            if ch.isalpha():
                other = ord(ch.swapcase())
                extra.append((other, other))
                if ch in "kK":
                    extra.append((0x212A, 0x212A))
                elif ch in "sS":
                    extra.append((0x17F, 0x17F))
    return ranges + extra


def merge(ranges: Ranges) -> Ranges:
    out: Ranges = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def negate(ranges: Ranges) -> Ranges:
    out: Ranges = []
    nxt = 0
    for lo, hi in merge(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= MAX_RUNE:
        out.append((nxt, MAX_RUNE))
    return out


def class_text(ranges: Ranges, negated: bool) -> str:
    """A Python class for `ranges` (`[^...]` when negated)."""
    merged = merge(ranges)
    if not merged:  # an empty class matches nothing; its negation matches anything
        merged, negated = [(0, MAX_RUNE)], not negated
    body = "".join(_char(lo) if lo == hi else f"{_char(lo)}-{_char(hi)}" for lo, hi in merged)
    return f"[{'^' if negated else ''}{body}]"


def _char(code: int) -> str:
    ch = chr(code)
    if ch.isascii() and ch.isalnum():
        return ch
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
