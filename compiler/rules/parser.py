"""Rule text in, an AST and every problem out: `parse_rule(text, kind)`.

Traefik parses a rule as a Go expression (go/parser via vulcand/predicate), so the syntax is
Go's: matcher calls with string-literal arguments in backticks or double quotes, `!`, `&&`,
`||`, parentheses, and Go comments (`/* ... */`, `// ...`) between tokens. The grammar is
`grammar.lark` (LALR, one pass, no recursion), with two Go details checked on the tokens:
escapes in double-quoted strings, and Go's automatic semicolon, which makes a line break right
after `)`, a name or a string (inside a comment there too) end the expression.

A syntax error stops the parse (one problem, with its column, and `ast` is None). Otherwise
every matcher is checked (`_checks.py`) and all problems are returned together with the AST;
a rule is usable (`ok`) when none of them is an error: warnings are rules Traefik accepts that
cannot mean what their author wanted. Bad input never raises.

The common shape, matchers with backtick arguments joined by `&&` (or by `||`), skips lark:
`_fast.py` builds the same AST and problems about a hundred times faster, and hands anything
else to the grammar (`_grammar.py`, imported on first use: a process whose rules all take the
fast path, a gateway worker typically, never loads lark).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from ._catalog import Kind
from ._checks import RuleProblem
from ._fast import parse_chain
from .ast import Rule

__all__ = ["MAX_DEPTH", "RuleParse", "RuleProblem", "parse_rule"]

MAX_DEPTH = 100  # nested parentheses and `!`: far beyond any real rule, well within Python's stack


@dataclass(frozen=True)
class RuleParse:
    """The result of parsing one rule: the AST (None after a syntax error) and all problems."""

    ast: Rule | None
    problems: list[RuleProblem] = field(default_factory=list)

    @property
    def errors(self) -> list[RuleProblem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[RuleProblem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """Usable: parsed, and no errors (warnings do not stop a rule from compiling)."""
        return self.ast is not None and not self.errors


def parse_rule(text: str, kind: Kind) -> RuleParse:
    """Parse a Traefik v3 rule for an HTTP or a TCP router.

    Parses are cached by text: the compiler, `default_priority` and the gateway's router tables
    (on every reload) parse the same rules, and a `RuleParse` is never changed once made.
    """
    return _parse(text, kind)


@functools.lru_cache(maxsize=1 << 14)
def _parse(text: str, kind: Kind) -> RuleParse:
    if not text.strip():
        return RuleParse(None, [RuleProblem(1, "empty rule", "e.g. PathPrefix(`/`)")])
    chain = parse_chain(text, kind)  # the common shapes, without lark (same AST and problems)
    if chain is not None:
        return RuleParse(*chain)
    from ._grammar import parse_with_grammar  # lark, loaded only when a rule needs it

    return parse_with_grammar(text, kind)
