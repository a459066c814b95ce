"""The rule AST and its canonical printer.

A rule is a tree of `And`, `Or` and `Not` over `Matcher` leaves. Matcher names are canonical
(`Header`, never the `Headers` alias nor a lower-case spelling) and arguments are the decoded
string values, so two rules that mean the same thing to the parser compare equal. The `col` of a
matcher is where its name starts in the text it was parsed from: diagnostics only, not identity.

`to_text` prints the canonical form: backtick-quoted arguments where possible, single spaces
around `&&` and `||`, and parentheses only where Go's precedence (`!` > `&&` > `||`, both binary
operators left-associative) needs them, so parsing the printed text gives back an equal tree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["And", "Matcher", "Not", "Or", "Rule", "go_quote", "iter_matchers", "operands", "to_text"]


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    args: tuple[str, ...]
    col: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    inner: Rule


@dataclass(frozen=True, slots=True)
class And:
    left: Rule
    right: Rule


@dataclass(frozen=True, slots=True)
class Or:
    left: Rule
    right: Rule


Rule = Matcher | Not | And | Or


def operands(rule: And | Or) -> list[Rule]:
    """The operands of a left-leaning chain `a && b && c` in order, walked without recursion.

    Long chains are common (`Host(a) || Host(b) || ...` for fifty hosts) and Go's parser builds
    them left-deep, so everything that walks a rule flattens chains here instead of recursing.
    """
    kind = type(rule)
    rights: list[Rule] = []
    node: Rule = rule
    while type(node) is kind:
        assert isinstance(node, And | Or)
        rights.append(node.right)
        node = node.left
    rights.append(node)
    rights.reverse()
    return rights


def iter_matchers(rule: Rule) -> Iterator[Matcher]:
    """Every matcher leaf, left to right."""
    stack: list[Rule] = [rule]
    while stack:
        node = stack.pop()
        if isinstance(node, Matcher):
            yield node
        elif isinstance(node, Not):
            stack.append(node.inner)
        else:
            stack.extend(reversed(operands(node)))


def to_text(rule: Rule) -> str:
    """The canonical text of `rule`; `parse_rule(to_text(r), kind).ast == r`."""
    if isinstance(rule, Matcher):
        return f"{rule.name}({', '.join(go_quote(a) for a in rule.args)})"
    if isinstance(rule, Not):
        inner = rule.inner
        text = to_text(inner)
        return "!" + (text if isinstance(inner, Matcher | Not) else f"({text})")
    op = " && " if isinstance(rule, And) else " || "
    parts = operands(rule)
    # The first operand may be a chain of the same operator only via the left spine (flattened
    # above); any other nested chain needs parentheses, and an Or inside an And always does.
    return op.join(_operand_text(p, isinstance(rule, And), i == 0) for i, p in enumerate(parts))


def _operand_text(rule: Rule, in_and: bool, first: bool) -> str:
    text = to_text(rule)
    if isinstance(rule, Or) or (isinstance(rule, And) and (in_and and not first)):
        return f"({text})"
    return text


_SIMPLE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(value: str) -> str:
    """`value` as a Go string literal: a raw `backtick` string unless it cannot be one.

    Raw strings cannot hold a backtick, and Go drops carriage returns from them; bytes that are
    not valid UTF-8 (kept as surrogate escapes) need `\\x` escapes too.
    """
    if "`" not in value and value.isprintable():  # not printable: controls (`\r`), lone surrogates
        return f"`{value}`"
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
        elif 0xDC80 <= code <= 0xDCFF:  # a lone byte kept by surrogateescape
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)
