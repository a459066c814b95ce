"""The Traefik v3 rule language: parse, check, print and compile router rules.

    parsed = parse_rule("Host(`example.com`) && PathPrefix(`/v1`)", "http")
    if parsed.problems:                      # every problem, each with a 1-based column
        ...
    matcher = compile_http(parsed.ast)       # matcher(request) -> bool, no parsing per request
    to_text(parsed.ast)                      # canonical text; parses back to an equal AST

Semantics, Traefik references and the differences from Traefik v2 are in docs/rules.md.
"""

from __future__ import annotations

from ._catalog import Kind
from ._checks import RuleProblem
from ._compile import RuleCompileError
from .ast import And, Matcher, Not, Or, Rule, iter_matchers, to_text
from .http_matchers import HeaderLookup, HttpMatcher, HttpMatchInput, compile_http
from .index import Placement, RuleIndex, placements
from .parser import RuleParse, parse_rule
from .priority import MAX_USER_PRIORITY, default_priority, effective_priority, is_catch_all, sort_key
from .tcp_matchers import TcpMatcher, TcpMatchInput, compile_tcp

__all__ = [
    "MAX_USER_PRIORITY",
    "And",
    "HeaderLookup",
    "HttpMatchInput",
    "HttpMatcher",
    "Kind",
    "Matcher",
    "Not",
    "Or",
    "Placement",
    "Rule",
    "RuleCompileError",
    "RuleIndex",
    "RuleParse",
    "RuleProblem",
    "TcpMatchInput",
    "TcpMatcher",
    "compile_http",
    "compile_tcp",
    "default_priority",
    "effective_priority",
    "is_catch_all",
    "iter_matchers",
    "parse_rule",
    "placements",
    "sort_key",
    "to_text",
]
