"""The router table of one entrypoint: compiled matchers, tried in priority order.

Rules are compiled once per rule text (`compiler.rules`) and the matchers are pure, so a reload
reuses them for routers whose rule did not change. Order is Traefik's: higher priority first
(the default priority is the rule's length, computed by the compiler), ties broken by name so
the order never depends on declaration order.

The table does not try every router: its `RuleIndex` (compiler/rules/index.py), built with the
table when a generation is built, names the routers that could match a request's host and path,
and only those are tried, in the same order. The index never changes which router wins.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..compiler.request_target import DEFAULT_PATHS, BadTarget, PathPolicy, valid_authority
from ..compiler.rules import Placement, Rule, RuleIndex, placements
from .api import Handler, Request, RouteInfo
from .errors import BadRequest

__all__ = ["CompiledRule", "Matcher", "RouteMatch", "RouterTable", "compile_rule", "route_order"]

Matcher = Callable[[Any], bool]


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """What the router decided: who takes the request, and the handler chain to call."""

    info: RouteInfo
    handler: Handler
    priority: int = 0


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """An HTTP rule ready to route: its matcher, and where the router index files it."""

    ast: Rule
    matches: Matcher
    placements: frozenset[Placement]


# Sized for provider-fed fleets: a reload of 10,000 routers finds every unchanged rule here.
@functools.lru_cache(maxsize=1 << 15)
def compile_rule(rule: str) -> CompiledRule:
    """The compiled form of an HTTP rule. The compiler has validated it, so errors here are bugs."""
    from ..compiler.rules import compile_http, parse_rule

    parsed = parse_rule(rule, "http")
    if parsed.ast is None:
        raise ValueError(f"rule {rule!r} does not parse: {parsed.problems}")
    return CompiledRule(parsed.ast, compile_http(parsed.ast), placements(parsed.ast, "http"))


def route_order(priority: int, name: str) -> Any:
    """Sort key of a router: the compiler's own ordering (so `a3s-gateway route` agrees)."""
    try:
        from ..compiler.rules.priority import sort_key
    except ImportError:  # pragma: no cover - the rules package always has it once complete
        return (-priority, name)
    return sort_key(name, priority)


def _host_field(raw: Sequence[tuple[bytes, bytes]]) -> bytes:
    return next((value for name, value in raw if name == b"host"), b"")


@functools.lru_cache(maxsize=1024)
def _valid_host(value: bytes) -> bool:
    return valid_authority(value.decode("latin-1"))


class RouterTable:
    """Routes requests of one entrypoint: the first matching router, by priority, wins.

    Before any matcher runs, the request target becomes the entrypoint's normal form
    (`compiler.request_target`): the path routed is the path forwarded. A refused target or a
    Host that is no valid authority is a 400.
    """

    __slots__ = ("_index", "_paths", "_routes", "entrypoint")

    def __init__(
        self,
        entrypoint: str,
        routes: Iterable[tuple[CompiledRule, RouteMatch]],
        paths: PathPolicy = DEFAULT_PATHS,
    ) -> None:
        self.entrypoint = entrypoint
        ordered = sorted(routes, key=lambda r: route_order(r[1].priority, r[1].info.router))
        self._routes: tuple[tuple[Matcher, RouteMatch], ...] = tuple((r.matches, m) for r, m in ordered)
        self._index = RuleIndex(r.placements for r, _ in ordered)
        self._paths = paths

    def route(self, request: Request) -> RouteMatch | None:
        target = request.target
        try:
            normal = self._paths.target(request.method, target)
        except BadTarget as exc:
            raise BadRequest(str(exc)) from None
        if normal is not target:
            request.target = normal
        raw = request.headers.raw
        # Host is the first field from HTTP/2 (the adapter puts :authority there) and from
        # clients that follow RFC 9112 §3.2's advice to send it first: no scan then.
        host = raw[0][1] if raw and raw[0][0] == b"host" else _host_field(raw)
        if host and not _valid_host(host):
            raise BadRequest("the Host header is not a valid authority (host[:port])")
        routes = self._routes
        for position in self._index.http_candidates(request):
            matches, match = routes[position]
            if matches(request):
                return match
        return None

    @property
    def routers(self) -> Sequence[str]:
        """Router names in the order they are tried."""
        return [m.info.router for _, m in self._routes]

    def __len__(self) -> int:
        return len(self._routes)

    def statistics(self) -> dict[str, int]:
        """How the index files the routers (`RuleIndex.statistics`)."""
        return self._index.statistics()
