"""The HCL front end: one file's text into literal blocks and attributes, each with its span.

`_hcl_scan.prepare` first rewrites the text one character for one character (the `;` separator
extension, masked `${VAR}` references), so every offset is one in the original file. Then most
files never reach python-hcl2: `_hcl_fast.py` reads the literal subset configurations are
written in (blocks of `name = literal` lines) to the same items, spans and diagnostics, and
hands anything else, and every syntax error, to the python-hcl2 path (`_hcl_lark.py`, loaded on
first use). String and heredoc values are read from the *original* text and go through
`interpolate` for `${VAR}` and `${VAR:-default}`.

The result is deliberately plain: `Document` is a tuple of `Attribute`s and `Block`s whose
values are Python literals with spans. How blocks become a tree, and what counts as a
duplicate across files, is `merge.py`'s business.
"""

from __future__ import annotations

import re
import sys
from bisect import bisect_right
from collections.abc import Mapping, Sequence

from ._hcl_doc import Attribute, Block, Document, Entry, Item, Value
from ._hcl_fast import Problem, Unsupported, read_literal_subset
from ._hcl_scan import prepare
from .diagnostics import Diagnostics
from .source import SourceFile, Span

__all__ = [
    "Attribute",
    "Block",
    "Document",
    "Entry",
    "Item",
    "Value",
    "parse_hcl",
    "parse_prepared",
    "release_parser",
]


def parse_hcl(source: SourceFile, env: Mapping[str, str], diags: Diagnostics) -> Document | None:
    """Parse one file. Problems go to `diags`; None when the file does not parse at all.

    A file that parses but holds non-literal expressions or unset variables still yields a
    document, without the offending attributes, so later passes can check the rest.

    A file in the literal subset (`_hcl_fast.py`) is read without python-hcl2, to the same
    document and diagnostics; any other file, and every syntax error, goes through python-hcl2.
    """
    if _PREPARED_AS_IS.search(source.text) is None:
        # Nothing for `prepare` to rewrite, nor to report (its problems are unclosed strings,
        # which the reader refuses too, and unclosed comments and heredocs, not in this text):
        # read the text itself and skip a scan of every character (a fifth of reading a
        # 10,000-router file).
        try:
            items, problems = read_literal_subset(source.text, source.text, env, source.path)
        except Unsupported:
            pass
        else:
            _report(source, diags, problems)
            return Document(source.path, items)
    return parse_prepared(source, env, diags)


def parse_prepared(source: SourceFile, env: Mapping[str, str], diags: Diagnostics) -> Document | None:
    """`parse_hcl` through `prepare`, whatever the text holds."""
    prepared = prepare(source.text)
    if prepared.problems:
        _report(source, diags, [(offset, message, None, "syntax") for offset, message in prepared.problems])
        return None
    try:
        items, problems = read_literal_subset(prepared.text, source.text, env, source.path)
    except Unsupported:
        from ._hcl_lark import parse_with_hcl2  # lark and python-hcl2, loaded on first use

        return parse_with_hcl2(source, env, diags, prepared)
    _report(source, diags, problems)
    return Document(source.path, items)


# What `prepare` acts on: `;` separators, `${...}` (and `$${`, `%{`, `%%{`) in strings, a byte-order
# mark, `/* */` comments and heredocs. A text with none of these is prepared as it is.
_PREPARED_AS_IS = re.compile(r"[;$%\ufeff]|/\*|<<")


def _report(source: SourceFile, diags: Diagnostics, problems: Sequence[Problem]) -> None:
    """Each problem as a diagnostic at its offset's line and column (as the python-hcl2 path's)."""
    if not problems:
        return
    text = source.text
    line_starts = [0, *(i + 1 for i, c in enumerate(text) if c == "\n")]
    for offset, message, hint, code in problems:
        offset = max(0, min(offset, len(text)))
        line = bisect_right(line_starts, offset)
        diags.error(
            message, Span(source.path, line, offset - line_starts[line - 1] + 1), hint=hint, code=code
        )


def release_parser() -> None:
    """Drop python-hcl2's parser, if a compile loaded it (see `_hcl_lark.release_parser`)."""
    lark_side = sys.modules.get(f"{__package__}._hcl_lark")
    if lark_side is not None:
        lark_side.release_parser()
