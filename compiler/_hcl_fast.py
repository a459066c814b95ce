"""A reader for the literal subset of HCL that configurations are written in, without lark.

python-hcl2 parses with lark's pure-Python LALR parser: about 30 µs per token, so most of a
second per thousand routers, and most of the compile of a provider-fed fleet. Nearly every
configuration is blocks of `name = literal` lines, and for those this module reads the text
(after `_hcl_scan.prepare`, so offsets are the file's) straight into the front end's items
with one regular expression per token.

The subset is strict on purpose. Blocks are `type label... {` on one line; an attribute is
`name = value` ended by a line break, a `#` or `//` comment, or the `}` of its block. Values are
quoted strings without templates (a masked `${VAR}` is fine), whole or decimal numbers,
`true`, `false`, `null`, and lists and objects of these, with commas or line breaks between
object members and commas between list elements. Anything else (heredocs, `/* */`, a keyword as a
name, a brace on its own line, a reference, an operator, and every syntax error) raises
`Unsupported`, and `hcl.py` parses the file with python-hcl2 as before: the fallback is what
reports syntax errors and non-literal values, so their diagnostics do not change.

String values and their diagnostics (escapes, unset variables) come from the same
`StringReader` as on the python-hcl2 path, in the same order, and are handed back only when the
whole file was read. `property_tests/test_hcl_fast_reader.py` checks that whatever this reads,
python-hcl2's tree gives the same document, spans and diagnostics.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ._hcl_doc import Attribute, Block, Entry, Item, Value, number
from ._hcl_strings import StringReader
from .source import Span

__all__ = ["Problem", "Unsupported", "read_literal_subset"]

Problem = tuple[int, str, str | None, str]  # offset, message, hint, code

# One token after the blanks lark ignores (`%ignore /[ \t\r]+/` in python-hcl2's grammar):
# - nl: a line break, or a `#` / `//` comment with its line break (python-hcl2's NL_OR_COMMENT);
# - str: a quoted string of python-hcl2's STRING_CHARS without `${` or `%{` (a template);
# - num: an INT_LITERAL or a FLOAT_LITERAL without exponent, not run into a name or a dot;
# - name: python-hcl2's NAME;
# - punct: the punctuation of blocks, lists and objects (`=` and `:` checked by the parser).
_TOKEN = re.compile(
    r"""[ \t\r]*(?:
      (?P<nl>(?:(?:\#|//)[^\n]*)?\n)
    | (?P<str>"(?:[^"\\\n$%]|\\[^\n]|\$(?!\{)|%(?!\{))*")
    | (?P<num>-?[0-9]+(?:\.[0-9]+)?)(?![0-9A-Za-z_.])
    | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
    | (?P<punct>[{}\[\],=:])
    )""",
    re.VERBOSE,
)
# `name = "string"` to the end of its line: the same tokens as above, in one match.
_STRING_LINE = re.compile(
    r"""([A-Za-z_][A-Za-z0-9_-]*)[ \t\r]*=[ \t\r]*("(?:[^"\\\n$%]|\\[^\n]|\$(?!\{)|%(?!\{))*")[ \t\r]*(?:(?:\#|//)[^\n]*)?\n"""
)
_SPECIAL = re.compile(r"[\\$%]")  # what makes a string's value differ from its text
# Names python-hcl2 lexes as keywords or literals: legal as names in places, but not here.
_RESERVED = frozenset({"in", "for", "if", "for_each", "else", "endif", "endfor", "true", "false", "null"})
_LITERALS: Mapping[str, bool | None] = {"true": True, "false": False, "null": None}
_MAX_DEPTH = 50  # nested blocks, lists and objects; deeper ones go to python-hcl2 (and its limit)


class Unsupported(Exception):
    """The text is outside the subset: parse it with python-hcl2."""


def read_literal_subset(
    prepared: str, original: str, env: Mapping[str, str], path: str
) -> tuple[tuple[Item, ...], list[Problem]]:
    """The items of file `path` and the problems found in its strings and numbers, in file order.

    `prepared` is what `_hcl_scan.prepare` made of `original` (string values are read from the
    original). Raises `Unsupported`.
    """
    reader = _Reader(prepared + "\n", original, env, path)  # python-hcl2 gets the same newline
    items = reader.body(0)
    return items, reader.problems


class _Reader:
    """A recursive-descent reader over one token of look-ahead (`kind`, `value`, `start`).

    Line numbers are counted as line breaks are passed (every `nl` token ends with one, either
    the file's or a `;` that `prepare` turned into one; no other token holds any), so `here()` is
    the position of the current token without a search.
    """

    def __init__(self, text: str, original: str, env: Mapping[str, str], path: str) -> None:
        self.text = text
        self.original = original
        self.path = path
        self.problems: list[Problem] = []
        self.strings = StringReader(original, env, self.report)
        self.pos = 0
        self.line, self.line_start = 1, 0  # of the current token
        self.kind, self.value, self.start = "", "", 0
        self.advance()

    def advance(self) -> None:
        if self.kind == "nl" and self.original.startswith("\n", self.pos - 1):  # not a `;` made one
            self.line, self.line_start = self.line + 1, self.pos
        m = _TOKEN.match(self.text, self.pos)
        if m is None:
            if self.text[self.pos :].strip(" \t\r"):
                raise Unsupported
            self.kind, self.value, self.start = "end", "", len(self.text)
            return
        kind = m.lastgroup
        assert kind is not None
        self.kind, self.value, self.start, self.pos = kind, m.group(kind), m.start(kind), m.end()

    def here(self, offset: int | None = None) -> Span:
        """The position of the current token (or of `offset`, on the current token's line)."""
        return Span(self.path, self.line, (self.start if offset is None else offset) - self.line_start + 1)

    def report(self, offset: int, message: str, *, hint: str | None = None, code: str = "config") -> None:
        self.problems.append((offset, message, hint, code))

    def at(self, punct: str) -> bool:
        return self.kind == "punct" and self.value == punct

    def expect(self, punct: str) -> None:
        if not self.at(punct):
            raise Unsupported
        self.advance()

    def skip_lines(self) -> None:
        while self.kind == "nl":
            self.advance()

    def name(self) -> str:
        if self.kind != "name" or self.value in _RESERVED:
            raise Unsupported
        name = self.value
        self.advance()
        return name

    # -- structure -------------------------------------------------------------------------------

    def body(self, depth: int) -> tuple[Item, ...]:
        """The items of the file (depth 0) or of a block's braces, up to the closing `}`."""
        if depth > _MAX_DEPTH:
            raise Unsupported
        top = depth == 0
        items: list[Item] = []
        while True:
            self.skip_lines()
            if (top and self.kind == "end") or (not top and self.at("}")):
                return tuple(items)
            line = _STRING_LINE.match(self.text, self.start) if self.kind == "name" else None
            item = self.string_line(line) if line is not None else self.item(depth)
            if item is not None:
                items.append(item)
            if line is None and self.kind != "nl" and (top or not self.at("}")):
                raise Unsupported  # python-hcl2 allows some items without a line break between

    def string_line(self, line: re.Match[str]) -> Attribute | None:
        """`name = "string"` and its line break, the commonest item, in one match."""
        if line.group(1) in _RESERVED:
            raise Unsupported
        name_at, value_at = self.here(), self.here(line.start(2))
        text = self.string_value(line.start(2), line.end(2))
        self.kind, self.pos = "nl", line.end()  # the line break is the current token: step over it
        self.advance()
        return None if text is None else Attribute(line.group(1), name_at, Value(text, value_at))

    def item(self, depth: int) -> Item | None:
        at = self.here()
        name = self.name()
        if self.at("="):
            self.advance()
            value = self.value_at(0)
            return None if value is None else Attribute(name, at, value)
        labels: list[str] = []
        spans: list[Span] = []
        failed = False
        while self.kind != "punct":
            spans.append(self.here())
            if self.kind != "str":
                labels.append(self.name())
            elif failed:  # python-hcl2's reader stops at the first label that fails
                self.advance()
            else:
                label = self.quoted()
                failed = label is None
                labels.append(label or "")
        self.expect("{")
        mark = len(self.problems)
        body = self.body(depth + 1)
        self.expect("}")
        if failed:  # and drops the block unread: no problems from its body
            del self.problems[mark:]
            return None
        return Block(name, tuple(labels), at, tuple(spans), body)

    # -- values ----------------------------------------------------------------------------------

    def value_at(self, depth: int) -> Value | None:
        if depth > _MAX_DEPTH:
            raise Unsupported
        kind, start, at = self.kind, self.start, self.here()
        if kind == "str":
            text = self.quoted()
            return None if text is None else Value(text, at)
        if kind == "num":
            literal = self.value
            self.advance()
            value = number(literal, is_int="." not in literal)
            if isinstance(value, str):
                self.report(start, value, code="literal")
                return None
            return Value(value, at)
        if kind == "name" and self.value in _LITERALS:
            keyword = _LITERALS[self.value]
            self.advance()
            return Value(keyword, at)
        if self.at("["):
            self.advance()
            return self.tuple(at, depth)
        if self.at("{"):
            self.advance()
            return self.object(at, depth)
        raise Unsupported

    def tuple(self, at: Span, depth: int) -> Value | None:
        entries: list[Entry] = []
        ok = True
        self.skip_lines()
        while not self.at("]"):
            element = self.value_at(depth + 1)
            if element is None:
                ok = False
            else:
                entries.append(Entry(len(entries), element.span, element))
            self.skip_lines()
            if self.at(","):
                self.advance()
                self.skip_lines()
            elif not self.at("]"):
                raise Unsupported
        self.advance()
        if not ok:
            return None
        return Value([e.value.data for e in entries], at, tuple(entries))

    def object(self, at: Span, depth: int) -> Value | None:
        entries: dict[str, Entry] = {}
        ok = True
        self.skip_lines()
        while not self.at("}"):
            key_start, key_at = self.start, self.here()
            key = self.quoted() if self.kind == "str" else self.name()
            if not (self.at("=") or self.at(":")):
                raise Unsupported
            self.advance()
            element = self.value_at(depth + 1)
            if key is None or element is None:
                ok = False
            elif key in entries:
                where = entries[key].span
                self.report(key_start, f"key '{key}' is already defined at {where}", code="duplicate")
                ok = False
            else:
                entries[key] = Entry(key, key_at, element)
            separated = self.kind == "nl"
            self.skip_lines()
            if self.at(","):
                self.advance()
                self.skip_lines()
            elif not separated and not self.at("}"):
                raise Unsupported  # python-hcl2 needs no separator between members; we do
        self.advance()
        if not ok:
            return None
        return Value({k: e.value.data for k, e in entries.items()}, at, tuple(entries.values()))

    def quoted(self) -> str | None:
        """The value of the current string token (problems reported through `strings`)."""
        start, end = self.start, self.start + len(self.value)
        self.advance()
        return self.string_value(start, end)

    def string_value(self, start: int, end: int) -> str | None:
        """The value of the quoted string at `start:end`, read from the original text: as written
        when it holds no escape, reference or `%` (most strings), else through `StringReader`."""
        content = self.original[start + 1 : end - 1]
        if _SPECIAL.search(content) is None:
            return content
        return self.strings.quoted(start + 1, end - 1)
