"""The python-hcl2 side of the HCL front end (`hcl.py`): the lark tree of one file into items.

Imported on first use only, for a file outside the literal subset that `_hcl_fast.py` reads
(or with a syntax error), so a process whose configuration is all in the subset, a gateway
worker typically, never loads lark, python-hcl2 and their parse tables.

We let python-hcl2's grammar and post-lexer do the parsing and keep only the raw lark tree,
whose tokens carry their character offsets (a rule's span is that of its first and last token:
lark's `propagate_positions` would compute the same for every rule of the file, and cost a
fifth of the parse). Its own
dict-building transformer is not used: it drops columns, and it turns every non-literal
expression into a `"${...}"` string, indistinguishable from a user's string. Walking the lark
tree ourselves gives exact positions and tells a reference (`service = api`) from a string.

Before parsing, `_hcl_scan.prepare` rewrites the text one character for one character (the `;`
separator extension, masked `${VAR}` references), so a lark offset is an offset in the original
file. String and heredoc values are then read from the *original* text at those offsets and
go through `interpolate` for `${VAR}` and `${VAR:-default}`.
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_right
from collections.abc import Mapping

import hcl2.parser
from hcl2.postlexer import PostLexer
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput

from ._hcl_doc import Attribute, Block, Document, Entry, Item, Value, number
from ._hcl_errors import describe_syntax_error
from ._hcl_scan import Prepared
from ._hcl_strings import StringReader
from .diagnostics import Diagnostics
from .source import SourceFile, Span

__all__ = ["parse_with_hcl2", "release_parser"]

Node = Tree[Token] | Token


@functools.cache
def _parser() -> Lark:
    """python-hcl2's own parser (`hcl2.parser.parser`), but for `propagate_positions`."""
    return Lark.open("hcl2.lark", parser="lalr", rel_to=hcl2.parser.__file__, postlex=PostLexer(), cache=True)


def release_parser() -> None:
    """Drop the loaded parser: a gateway that has compiled its configuration keeps ~3 MiB of
    parse tables and, fragmented around them, the ~8 MiB that loading them allocated and freed
    (lark's cache file is unpickled). The next compile (a reload) loads it again (~85 ms CPU)."""
    _parser.cache_clear()


def _parse(text: str) -> Tree[Token]:
    # The newline is python-hcl2's own workaround (`parses_to_tree`): its grammar needs one at the end.
    tree: Tree[Token] = _parser().parse(text + "\n")
    return tree


def parse_with_hcl2(
    source: SourceFile, env: Mapping[str, str], diags: Diagnostics, prepared: Prepared
) -> Document | None:
    """The python-hcl2 path of `parse_hcl`, for a file that `prepare` found no problem in."""
    reader = _Reader(source, env, diags)
    try:
        tree = _parse(prepared.text)
    except UnexpectedInput as exc:
        _report_syntax_errors(reader, prepared, exc)
        return None
    except RecursionError:
        reader.error(0, "the configuration is nested too deeply", code="syntax")
        return None
    except Exception as exc:  # a python-hcl2 bug must still be a diagnostic, never a traceback
        reader.error(0, f"python-hcl2 could not parse this file: {exc}", code="syntax")
        return None
    try:
        top = tree.children[0]
        assert isinstance(top, Tree), "python-hcl2's start rule holds the body"
        return Document(reader.path, reader.body(top))
    except RecursionError:
        reader.error(0, "the configuration is nested too deeply", code="syntax")
        return None


# Enough to fix a file in one go; past this, later errors are likely echoes of earlier ones.
_MAX_SYNTAX_ERRORS = 20


def _report_syntax_errors(reader: _Reader, prepared: Prepared, first: UnexpectedInput) -> None:
    """Report `first`, then every further top-level item that fails to parse.

    A parse cannot continue past an error, so we resynchronise the way compilers do at statement
    boundaries: the top-level item holding the error is blanked (spaces, newlines kept, so every
    offset stays exact) and the file is parsed again. An item whose braces never close runs to
    the end of the file, so it is reported once rather than as a cascade. The document is still
    dropped: later passes would only add noise about what the broken items left undefined.
    """
    starts, text, exc = prepared.item_starts, prepared.text, first
    last = -1
    for _ in range(_MAX_SYNTAX_ERRORS):
        offset, message, hint = describe_syntax_error(exc, reader.text, prepared.separators)
        if offset <= last:
            return  # no progress (typically the end of the file again): an echo, not news
        reader.error(offset, message, hint=hint, code="syntax")
        last = offset
        index = bisect_right(starts, offset) - 1
        start = starts[index] if index >= 0 else 0
        end = starts[index + 1] if index + 1 < len(starts) else len(text)
        # Blanking what is already blank changes nothing: the next error is then at or before
        # `last`, and the check above ends the loop.
        text = text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]
        try:
            _parse(text)
            return
        except UnexpectedInput as again:
            exc = again
        except Exception:  # a parse that fails differently has nothing more to tell
            return


def _offset(node: Node) -> int:
    first = node
    while isinstance(first, Tree) and first.children:  # the common case: the first child leads
        first = first.children[0]
    token = first if isinstance(first, Token) else _edge_token(node, last=False)
    return (token.start_pos or 0) if token is not None else 0


def _end(node: Node) -> int:
    token = _edge_token(node, last=True)
    return (token.end_pos or 0) if token is not None else 0


def _edge_token(node: Node, *, last: bool) -> Token | None:
    """The first (or last) token under `node` in text order; None for a rule without any."""
    stack = [node]
    while stack:
        top = stack.pop()
        if isinstance(top, Token):
            return top
        stack.extend(top.children if last else reversed(top.children))
    return None


def _trees(node: Tree[Token]) -> list[Tree[Token]]:
    """Child rules, without comments and newlines."""
    return [c for c in node.children if isinstance(c, Tree) and c.data != "new_line_or_comment"]


_NAME_RULES = {"identifier", "keyword", "literal_value"}
_EXPRESSION_KINDS = {
    "identifier": "a reference",
    "get_attr_expr_term": "an attribute reference",
    "index_expr_term": "an index expression",
    "attr_splat_expr_term": "a splat expression",
    "full_splat_expr_term": "a splat expression",
    "function_call": "a function call",
    "conditional": "a conditional expression",
    "binary_op": "an operator expression",
    "unary_op": "an operator expression",
    "for_tuple_expr": "a for expression",
    "for_object_expr": "a for expression",
    "template_string": "a template string",
    "interpolation": "a template interpolation",
    "template_if_start": "a template directive",
    "template_else": "a template directive",
    "template_endif": "a template directive",
    "template_for_start": "a template directive",
    "template_endfor": "a template directive",
}


class _Reader:
    """Turns the lark tree of one file into `Item`s, reporting what is not a literal."""

    def __init__(self, source: SourceFile, env: Mapping[str, str], diags: Diagnostics) -> None:
        self.path = source.path
        self.text = source.text
        self.env = env
        self.diags = diags
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", source.text)]
        self.strings = StringReader(source.text, env, self.error)

    # -- positions and errors ------------------------------------------------------------------

    def span(self, offset: int) -> Span:
        offset = max(0, min(offset, len(self.text)))
        line = bisect_right(self.line_starts, offset)
        return Span(self.path, line, offset - self.line_starts[line - 1] + 1)

    def error(self, offset: int, message: str, *, hint: str | None = None, code: str = "config") -> None:
        self.diags.error(message, self.span(offset), hint=hint, code=code)

    def not_literal(self, node: Node) -> None:
        kind = _EXPRESSION_KINDS.get(node.data if isinstance(node, Tree) else "", "an expression")
        start, end = _offset(node), _end(node)
        excerpt = self.text[start:end].split("\n", 1)[0]
        excerpt = excerpt if len(excerpt) <= 40 else excerpt[:37] + "..."
        hint = None
        if kind == "a reference":
            hint = f'write a string in quotes: "{excerpt}"'
        elif kind == "a template interpolation":
            hint = "read an environment variable with ${NAME} or ${NAME:-default}; $${ is a literal ${"
        self.error(
            start, f"only literal values are supported: `{excerpt}` is {kind}", hint=hint, code="literal"
        )

    # -- structure -----------------------------------------------------------------------------

    def body(self, tree: Tree[Token]) -> tuple[Item, ...]:
        items: list[Item] = []
        for child in _trees(tree):
            item = self.attribute(child) if child.data == "attribute" else self.block(child)
            if item is not None:
                items.append(item)
        return tuple(items)

    def attribute(self, tree: Tree[Token]) -> Attribute | None:
        name_node, value_node = tree.children[0], tree.children[2]
        value = self.value(value_node)
        if value is None:
            return None
        return Attribute(self.name(name_node), self.span(_offset(name_node)), value)

    def block(self, tree: Tree[Token]) -> Block | None:
        heads = [c for c in tree.children if isinstance(c, Tree) and c.data in _NAME_RULES | {"string"}]
        body = next(c for c in tree.children if isinstance(c, Tree) and c.data == "body")
        labels: list[str] = []
        for node in heads[1:]:
            label = self.string(node) if node.data == "string" else self.name(node)
            if label is None:
                return None
            labels.append(label)
        spans = tuple(self.span(_offset(node)) for node in heads[1:])
        block_type = self.name(heads[0])
        return Block(block_type, tuple(labels), self.span(_offset(tree)), spans, self.body(body))

    @staticmethod
    def name(node: Node) -> str:
        if isinstance(node, Token):
            return str(node)
        return str(node.children[0])

    # -- values --------------------------------------------------------------------------------

    def value(self, node: Node) -> Value | None:
        if isinstance(node, Token):  # never produced by the grammar for a value; be safe
            self.not_literal(node)
            return None
        rule = node.data
        if rule == "expr_term":
            first = node.children[0]
            if isinstance(first, Token):  # ( expression )
                return self.value(_trees(node)[0])
            return self.value(first)
        span = self.span(_offset(node))
        if rule in ("int_lit", "float_lit"):
            return self.number(node.children[0], span)
        if rule == "literal_value":
            return Value({"true": True, "false": False, "null": None}[str(node.children[0])], span)
        if rule in ("string", "heredoc_template", "heredoc_template_trim"):
            text = self.string(node) if rule == "string" else self.heredoc(node)
            return None if text is None else Value(text, span)
        if rule == "tuple":
            return self.tuple(node, span)
        if rule == "object":
            return self.object(node, span)
        if rule == "unary_op":
            return self.negative(node, span)
        self.not_literal(node)
        return None

    def number(self, token: Node, span: Span) -> Value | None:
        value = number(str(token), is_int=isinstance(token, Token) and token.type == "INT_LITERAL")
        if isinstance(value, str):
            self.error(_offset(token), value, code="literal")
            return None
        return Value(value, span)

    def negative(self, node: Tree[Token], span: Span) -> Value | None:
        operator, operand = node.children[0], node.children[1]
        inner = operand.children[0] if isinstance(operand, Tree) and operand.children else None
        if str(operator) == "-" and isinstance(inner, Tree) and inner.data in ("int_lit", "float_lit"):
            value = self.number(inner.children[0], span)
            return None if value is None else Value(-value.data, span)
        self.not_literal(node)
        return None

    def tuple(self, node: Tree[Token], span: Span) -> Value | None:
        entries: list[Entry] = []
        ok = True
        for index, child in enumerate(_trees(node)):
            element = self.value(child)
            if element is None:
                ok = False
            else:
                entries.append(Entry(index, element.span, element))
        if not ok:
            return None
        return Value([e.value.data for e in entries], span, tuple(entries))

    def object(self, node: Tree[Token], span: Span) -> Value | None:
        entries: dict[str, Entry] = {}
        ok = True
        for elem in _trees(node):
            key_node, value_node = elem.children[0], elem.children[2]
            key, element = self.key(key_node), self.value(value_node)
            key_span = self.span(_offset(key_node))
            if key is None or element is None:
                ok = False
            elif key in entries:
                self.error(
                    _offset(key_node),
                    f"key '{key}' is already defined at {entries[key].span}",
                    code="duplicate",
                )
                ok = False
            else:
                entries[key] = Entry(key, key_span, element)
        if not ok:
            return None
        return Value({k: e.value.data for k, e in entries.items()}, span, tuple(entries.values()))

    def key(self, node: Node) -> str | None:
        """An object key: a name, a quoted string or a number, as text."""
        inner = node.children[0] if isinstance(node, Tree) else node
        if isinstance(inner, Tree) and inner.data == "expr_term" and inner.children:
            inner = inner.children[0]
        if isinstance(inner, Tree) and inner.data in _NAME_RULES | {"int_lit", "float_lit"}:
            return str(inner.children[0])
        if isinstance(inner, Tree) and inner.data == "string":
            return self.string(inner)
        self.not_literal(inner)
        return None

    # -- strings -------------------------------------------------------------------------------

    def string(self, node: Tree[Token]) -> str | None:
        for part in node.children:
            if isinstance(part, Tree) and part.data == "string_part" and isinstance(part.children[0], Tree):
                self.not_literal(part.children[0])
                return None
        return self.strings.quoted(_offset(node) + 1, _end(node) - 1)

    def heredoc(self, node: Tree[Token]) -> str | None:
        return self.strings.heredoc(_offset(node), _end(node), trim=node.data == "heredoc_template_trim")
