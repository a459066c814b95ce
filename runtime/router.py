"""The router table of one entrypoint: compiled matchers, tried in priority order.

Rules are compiled once per rule text (`compiler.rules`) and the matchers are pure, so a reload
reuses them for routers whose rule did not change. Order is Traefik's: higher priority first
(the default priority is the rule's length, computed by the compiler), ties broken by name so
the order never depends on declaration order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .api import Handler, Request, RouteInfo

__all__ = ["Matcher", "RouteMatch", "RouterTable", "compile_matcher", "route_order"]

Matcher = Callable[[Any], bool]


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """What the router decided: who takes the request, and the handler chain to call."""

    info: RouteInfo
    handler: Handler
    priority: int = 0


@functools.lru_cache(maxsize=4096)
def compile_matcher(rule: str) -> Matcher:
    """The matcher of an HTTP rule. The compiler has validated it, so errors here are bugs."""
    from ..compiler.rules import compile_http, parse_rule

    parsed = parse_rule(rule, "http")
    if parsed.ast is None:
        raise ValueError(f"rule {rule!r} does not parse: {parsed.problems}")
    matcher: Matcher = compile_http(parsed.ast)
    return matcher


def route_order(priority: int, name: str) -> Any:
    """Sort key of a router: the compiler's own ordering (so `a3s-gateway route` agrees)."""
    try:
        from ..compiler.rules.priority import sort_key
    except ImportError:  # pragma: no cover - the rules package always has it once complete
        return (-priority, name)
    return sort_key(name, priority)


class RouterTable:
    """Routes requests of one entrypoint: the first matching router, by priority, wins."""

    __slots__ = ("_routes", "entrypoint")

    def __init__(self, entrypoint: str, routes: Iterable[tuple[Matcher, RouteMatch]]) -> None:
        self.entrypoint = entrypoint
        ordered = sorted(routes, key=lambda r: route_order(r[1].priority, r[1].info.router))
        self._routes: tuple[tuple[Matcher, RouteMatch], ...] = tuple(ordered)

    def route(self, request: Request) -> RouteMatch | None:
        for matches, match in self._routes:
            if matches(request):
                return match
        return None

    @property
    def routers(self) -> Sequence[str]:
        """Router names in the order they are tried."""
        return [m.info.router for _, m in self._routes]

    def __len__(self) -> int:
        return len(self._routes)
