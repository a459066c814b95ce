"""The common rule shapes without lark: a chain of matchers with backtick arguments.

Provider-fed fleets write thousands of rules like ``Host(`a.example.com`) && PathPrefix(`/v1`)``.
Parsing each through lark costs about a millisecond (lexer, LALR parser, tree transform), most
of a 10,000-router compile. A rule that is one matcher, or matchers joined by `&&` alone or by
`||` alone, each taking only backtick strings, separated by spaces and tabs, is read here with a
few regular expressions and built into the AST the grammar gives for it: the chain left-deep,
as `and_expr _AND unary` builds it, each matcher checked by the same `check_matcher` at the same
column.

Anything else returns None and goes to the grammar: double-quoted strings (escapes), `!`,
parentheses, mixed operators, comments, line breaks (Go's automatic semicolon), a trailing comma,
and every syntax error, so a bad rule gets the grammar's diagnostics. `property_tests/
test_rule_fast_path.py` checks that whatever this accepts, the grammar parses to the same AST,
columns and problems.
"""

from __future__ import annotations

import re

from ._catalog import Kind
from ._checks import Arg, RuleProblem, check_matcher
from ._gostring import unquote
from .ast import And, Matcher, Or, Rule

__all__ = ["parse_chain"]

# The grammar's NAME and RAW_STRING terminals, with the spaces and tabs it ignores before them.
_CALL = re.compile(r"[ \t]*([^\W\d]\w*)[ \t]*\(")
_FIRST_ARG = re.compile(r"[ \t]*(`[^`]*`)")
_NEXT_ARG = re.compile(r"[ \t]*,[ \t]*(`[^`]*`)")
_CLOSE = re.compile(r"[ \t]*\)")
_OPERATOR = re.compile(r"[ \t]*(&&|\|\|)")
_TRAILING = re.compile(r"[ \t]*\Z")


def parse_chain(text: str, kind: Kind) -> tuple[Rule, list[RuleProblem]] | None:
    """The AST and problems (sorted by column) of a matcher chain, or None for any other text."""
    problems: list[RuleProblem] = []
    rule: Rule | None = None
    operator = ""
    pos = 0
    while True:
        call = _CALL.match(text, pos)
        if call is None:
            return None
        args, pos = _args(text, call.end())
        close = _CLOSE.match(text, pos)
        if close is None:
            return None
        col = call.start(1) + 1
        matcher = Matcher(
            check_matcher(call.group(1), args, col, kind, problems), tuple(a.value for a in args), col
        )
        rule = matcher if rule is None else (And(rule, matcher) if operator == "&&" else Or(rule, matcher))
        joined = _OPERATOR.match(text, close.end())
        if joined is None:
            break
        if operator and joined.group(1) != operator:
            return None  # `a && b || c`: precedence is the grammar's business
        operator, pos = joined.group(1), joined.end()
    if _TRAILING.match(text, close.end()) is None:
        return None
    problems.sort(key=lambda p: p.col)
    return rule, problems


def _args(text: str, pos: int) -> tuple[list[Arg], int]:
    """Backtick arguments from `pos` (maybe none), with the column of each opening quote."""
    first = _FIRST_ARG.match(text, pos)
    if first is None:
        return [], pos
    args = [Arg(unquote(first.group(1)), first.start(1) + 1)]
    pos = first.end()
    while (more := _NEXT_ARG.match(text, pos)) is not None:
        args.append(Arg(unquote(more.group(1)), more.start(1) + 1))
        pos = more.end()
    return args, pos
