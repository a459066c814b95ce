"""Shared by the HTTP and TCP compilers: check the rule, then turn the tree into closures."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ._catalog import Kind
from ._checks import Arg, RuleProblem, check_matcher
from .ast import And, Matcher, Not, Rule, iter_matchers, operands

__all__ = ["RuleCompileError", "build"]

T = TypeVar("T")


class RuleCompileError(ValueError):
    """A rule with problems was compiled; `parse_rule` reports them with their columns."""


def build(rule: Rule, kind: Kind, leaf: Callable[[Matcher], Callable[[T], bool]]) -> Callable[[T], bool]:
    problems: list[RuleProblem] = []
    for m in iter_matchers(rule):
        check_matcher(m.name, [Arg(a, m.col) for a in m.args], m.col, kind, problems)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise RuleCompileError("; ".join(p.message for p in errors))
    return _closure(rule, leaf)


def _closure(rule: Rule, leaf: Callable[[Matcher], Callable[[T], bool]]) -> Callable[[T], bool]:
    if isinstance(rule, Matcher):
        return leaf(rule)
    if isinstance(rule, Not):
        inner = _closure(rule.inner, leaf)
        return lambda x: not inner(x)
    parts = tuple(_closure(p, leaf) for p in operands(rule))
    if isinstance(rule, And):
        return _all(parts)
    return _any(parts)


def _all(parts: tuple[Callable[[T], bool], ...]) -> Callable[[T], bool]:
    if len(parts) == 2:
        a, b = parts
        return lambda x: a(x) and b(x)

    def match(x: T) -> bool:
        for part in parts:  # noqa: SIM110 - a plain loop: no generator object per request
            if not part(x):
                return False
        return True

    return match


def _any(parts: tuple[Callable[[T], bool], ...]) -> Callable[[T], bool]:
    if len(parts) == 2:
        a, b = parts
        return lambda x: a(x) or b(x)

    def match(x: T) -> bool:
        for part in parts:  # noqa: SIM110 - a plain loop: no generator object per request
            if part(x):
                return True
        return False

    return match
