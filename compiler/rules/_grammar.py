"""The lark side of `parser.py`: the grammar, Go's token checks, and the syntax errors.

Imported on first use only (`parser._parse`), so that a process whose rules all take the fast path
(`_fast.py`) never loads lark and its parse tables.
"""

from __future__ import annotations

from pathlib import Path

from lark import (
    Lark,
    Token,
    Transformer_NonRecursive,
    Tree,
    UnexpectedCharacters,
    UnexpectedInput,
    UnexpectedToken,
)

from ._catalog import Kind
from ._checks import Arg, RuleProblem, check_matcher
from ._gostring import GoStringError, unquote
from .ast import And, Matcher, Not, Or, Rule, operands
from .parser import MAX_DEPTH, RuleParse

__all__ = ["parse_with_grammar"]


_GRAMMAR = Path(__file__).with_name("grammar.lark").read_text(encoding="utf-8")
_LARK = Lark(_GRAMMAR, parser="lalr", lexer="basic", maybe_placeholders=False)
# The same grammar's lexer alone: built once (`Lark.lex` on a parser builds a lexer per call).
# A rule is lexed once, checked on its tokens, and the tokens are fed to the parser.
_LEXER = Lark(_GRAMMAR, parser=None, lexer="basic")
_SEMICOLON_AFTER = frozenset({"NAME", "RAW_STRING", "INTERP_STRING", "_RPAR"})
_DESCRIBE = {
    "NAME": "a matcher",
    "RAW_STRING": "a string",
    "INTERP_STRING": "a string",
    "_OR": "'||'",
    "_AND": "'&&'",
    "_BANG": "'!'",
    "_LPAR": "'('",
    "_RPAR": "')'",
    "_COMMA": "','",
    "$END": "the end of the rule",
}


def parse_with_grammar(text: str, kind: Kind) -> RuleParse:
    """The lark parse of a non-blank rule: every shape, and the reference for `parse_chain`."""
    try:
        tokens = list(_LEXER.lex(text))
    except UnexpectedCharacters as exc:
        return RuleParse(None, [_describe_error(text, exc)])
    syntax = _syntax_problem(text, tokens)
    if syntax is not None:
        return RuleParse(None, [syntax])
    problems: list[RuleProblem] = []
    try:
        ast: Rule = _Build(kind, problems).transform(_parse_tokens(tokens))
    except UnexpectedInput as exc:  # already lexed cleanly, so an unexpected token
        return RuleParse(None, [_describe_error(text, exc)])
    if _depth(ast) > MAX_DEPTH:
        return RuleParse(None, [RuleProblem(1, f"rule nests too deeply (more than {MAX_DEPTH} levels)")])
    problems.sort(key=lambda p: p.col)
    return RuleParse(ast, problems)


def _parse_tokens(tokens: list[Token]) -> Tree[Token]:
    """What `_LARK.parse(text)` returns, from the tokens already lexed (the same `$END` too)."""
    parser = _LARK.parse_interactive("")
    for token in tokens:
        parser.feed_token(token)
    end = Token.new_borrow_pos("$END", "", tokens[-1]) if tokens else Token("$END", "", 0, 1, 1)
    tree: Tree[Token] = parser.feed_token(end)
    return tree


def _syntax_problem(text: str, tokens: list[Token]) -> RuleProblem | None:
    """Bad escapes and Go's automatic semicolons, found on the tokens."""
    for index, token in enumerate(tokens):
        if token.type == "INTERP_STRING":
            try:
                unquote(str(token))
            except GoStringError as exc:
                return RuleProblem(_start(token) + exc.offset + 1, f"syntax error: {exc.message}")
        if token.type in _SEMICOLON_AFTER and index + 1 < len(tokens):
            gap = text[_end(token) : _start(tokens[index + 1])]
            if "\n" in gap:
                return RuleProblem(
                    _end(token) + gap.index("\n") + 1,
                    "syntax error: a line break here ends the rule (Go inserts a semicolon after "
                    f"{_DESCRIBE[token.type].removeprefix('a ')})",
                    "break lines after '&&', '||', '(' or ',' instead",
                )
    return None


def _start(token: Token) -> int:
    return token.start_pos or 0


def _end(token: Token) -> int:
    return token.end_pos or 0


def _describe_error(text: str, exc: UnexpectedInput) -> RuleProblem:
    pos = exc.pos_in_stream if exc.pos_in_stream is not None else len(text)
    if isinstance(exc, UnexpectedCharacters):
        if text.startswith("/*", pos):
            return RuleProblem(pos + 1, "syntax error: comment not terminated", "close it with */")
        return RuleProblem(pos + 1, *_unexpected_char(text[pos]))
    assert isinstance(exc, UnexpectedToken)
    token = exc.token
    if token.type == "$END":
        pos = len(text)
    accepts = _accepted_after(text[:pos])
    expected = sorted({_DESCRIBE[t] for t in accepts if t in _DESCRIBE})
    found = "end of the rule" if token.type == "$END" else _found(token)
    message = f"syntax error: unexpected {found}; expected {' or '.join(expected)}"
    if token.type == "$END":
        pos = len(text.rstrip())
    return RuleProblem(pos + 1, message, _token_hint(token, set(accepts)))


def _accepted_after(prefix: str) -> set[str]:
    """What the parser accepts after `prefix`. The state that failed may already have reduced
    some choices away (`&&` after a complete matcher), so replay the prefix and ask."""
    replay = _LARK.parse_interactive(prefix)
    replay.exhaust_lexer()
    accepted: set[str] = replay.accepts()  # type: ignore[no-untyped-call]
    return accepted


def _found(token: Token) -> str:
    if token.type in ("RAW_STRING", "INTERP_STRING"):
        return f"string {token}"
    return f"'{token}'"


def _unexpected_char(ch: str) -> tuple[str, str | None]:
    if ch in '`"':
        return "syntax error: unterminated string", f"close it with {ch}"
    if ch == "'":
        return "syntax error: single quotes are not accepted", "quote values with backticks or double quotes"
    if ch in "&|":
        return f"syntax error: unexpected '{ch}'", f"write {ch * 2}"
    return f"syntax error: unexpected character {ch!r}", None


def _token_hint(token: Token, expected: set[str]) -> str | None:
    if token.type == "NAME" and str(token).lower() in ("and", "or", "not"):
        return "write && for and, || for or, ! for not"
    if token.type in ("NAME", "_LPAR", "_BANG") and "_AND" in expected:
        return "join matchers with && or ||"
    if token.type == "NAME" and "RAW_STRING" in expected:
        return f"quote arguments: `{token}`"
    if token.type in ("RAW_STRING", "INTERP_STRING") and "NAME" in expected:
        return "a rule is made of matchers such as Host(`example.com`)"
    return None


class _Build(Transformer_NonRecursive[Token, Rule]):
    """Parse tree to AST, bottom-up and without recursion, checking each matcher as it goes."""

    def __init__(self, kind: Kind, problems: list[RuleProblem]) -> None:
        super().__init__()
        self.kind = kind
        self.problems = problems

    def or_(self, children: list[Rule]) -> Rule:
        return Or(children[0], children[1])

    def and_(self, children: list[Rule]) -> Rule:
        return And(children[0], children[1])

    def not_(self, children: list[Rule]) -> Rule:
        return Not(children[0])

    def args(self, children: list[Token]) -> list[Arg]:
        return [Arg(unquote(str(t)), _start(t) + 1, t.type == "RAW_STRING") for t in children]

    def call(self, children: list[Token | list[Arg]]) -> Rule:
        name = children[0]
        assert isinstance(name, Token)
        args = children[1] if len(children) > 1 else []
        assert isinstance(args, list)
        col = _start(name) + 1
        canonical = check_matcher(str(name), args, col, self.kind, self.problems)
        return Matcher(canonical, tuple(a.value for a in args), col)


def _depth(rule: Rule) -> int:
    """Nesting depth, counting a chain `a && b && c` as one level (walkers flatten chains)."""
    deepest = 0
    stack: list[tuple[Rule, int]] = [(rule, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, Not):
            stack.append((node.inner, depth + 1))
        elif isinstance(node, And | Or):
            stack.extend((child, depth + 1) for child in operands(node))
    return deepest
