"""The router table of one entrypoint: compiled matchers, tried in priority order.

Rules are compiled once per rule text (`compiler.rules`) and the matchers are pure, so a reload
reuses them for routers whose rule did not change. Order is Traefik's: higher priority first
(the default priority is the rule's length, computed by the compiler), ties broken by name so
the order never depends on declaration order.

The table does not try every router: its `RuleIndex` (compiler/rules/index.py), built with the
table when a generation is built, names the routers that could match a request's host and path,
and only those are tried, in the same order. The index never changes which router wins.

The route cache. When no rule of the table reads anything but the host, the path and the method
(no Header, Query nor ClientIP matcher), the whole decision (the target's normal form, the Host
check and the router) is a pure function of (Host field, path[, method]), so the table
remembers it per key: a hit is one dictionary lookup. It keys on exactly what the rules read
(the method only when a `Method` matcher is there) and on the path without its query (the normal
form never touches the query, and no cached rule reads it). It is bounded (`ROUTE_CACHE_SIZE`
entries, the oldest dropped first; long paths and Host values are not kept) and holds only
decisions that succeeded (a refused target or Host is judged again each time). It lives in the table, which each graph generation builds
anew, so a reload starts with an empty cache: no entry can outlive the rules it was computed
from. property_tests/test_route_cache_properties.py checks that a cached decision is the
uncached one, also once many distinct paths have evicted entries.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..compiler.request_target import DEFAULT_PATHS, BadTarget, PathPolicy, valid_authority
from ..compiler.rules import Placement, Rule, RuleIndex, iter_matchers, placements, sort_key
from .api import Handler, Request, RouteInfo
from .errors import BadRequest

__all__ = [
    "ROUTE_CACHE_SIZE",
    "CompiledRule",
    "Matcher",
    "RouteMatch",
    "RouterTable",
    "compile_rule",
    "route_order",
]

Matcher = Callable[[Any], bool]

ROUTE_CACHE_SIZE = 1024
# Longer paths, or Host values, are routed without the cache (and the Host check without its
# memo): a client chooses both, up to the head's 32 KiB, so the caches' memory stays bounded by
# this times their sizes. (No DNS name is over 253 characters.)
_CACHED_PATH_MAX = _CACHED_HOST_MAX = 512
# What each matcher reads of a request, for the route cache's key; matchers not named here
# (Header, HeaderRegexp, Query, QueryRegexp, ClientIP) read more, and their table has no cache.
_READS = {
    "Host": "host",
    "HostRegexp": "host",
    "Path": "path",
    "PathPrefix": "path",
    "PathRegexp": "path",
    "Method": "method",
}


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """What the router decided: who takes the request, and the handler chain to call."""

    info: RouteInfo
    handler: Handler
    priority: int = 0
    # The route's `callback_path.DirectRoute` when its requests may take the callback path.
    direct: Any = None


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """An HTTP rule ready to route: its matcher, and where the router index files it."""

    ast: Rule
    matches: Matcher
    placements: frozenset[Placement]
    # What its matchers read of a request (`_READS`; "" for anything else), for the route cache.
    reads: frozenset[str]


# Sized for provider-fed fleets: a reload of 10,000 routers finds every unchanged rule here.
@functools.lru_cache(maxsize=1 << 15)
def compile_rule(rule: str) -> CompiledRule:
    """The compiled form of an HTTP rule. The compiler has validated it, so errors here are bugs."""
    from ..compiler.rules import compile_http, parse_rule

    parsed = parse_rule(rule, "http")
    if parsed.ast is None:
        raise ValueError(f"rule {rule!r} does not parse: {parsed.problems}")
    reads = frozenset(_READS.get(m.name, "") for m in iter_matchers(parsed.ast))
    return CompiledRule(parsed.ast, compile_http(parsed.ast), placements(parsed.ast, "http"), reads)


def route_order(priority: int, name: str) -> Any:
    """Sort key of a router: the compiler's own ordering (so `a3s-gateway route` agrees)."""
    return sort_key(name, priority)


def _host_field(raw: Sequence[tuple[bytes, bytes]]) -> bytes:
    return next((value for name, value in raw if name == b"host"), b"")


def _valid_authority(value: bytes) -> bool:
    return valid_authority(value.decode("latin-1"))


_valid_host = functools.lru_cache(maxsize=1024)(_valid_authority)  # Host values up to _CACHED_HOST_MAX


class RouterTable:
    """Routes requests of one entrypoint: the first matching router, by priority, wins.

    Before any matcher runs, the request target becomes the entrypoint's normal form
    (`compiler.request_target`): the path routed is the path forwarded. A refused target or a
    Host that is no valid authority is a 400.
    """

    __slots__ = ("_by_method", "_cache", "_cache_size", "_index", "_paths", "_routes", "entrypoint")

    def __init__(
        self,
        entrypoint: str,
        routes: Iterable[tuple[CompiledRule, RouteMatch]],
        paths: PathPolicy = DEFAULT_PATHS,
        *,
        cache_size: int = ROUTE_CACHE_SIZE,
    ) -> None:
        self.entrypoint = entrypoint
        ordered = sorted(routes, key=lambda r: route_order(r[1].priority, r[1].info.router))
        self._routes: tuple[tuple[Matcher, RouteMatch], ...] = tuple((r.matches, m) for r, m in ordered)
        self._index = RuleIndex(r.placements for r, _ in ordered)
        self._paths = paths
        reads = frozenset().union(*(r.reads for r, _ in ordered))  # each worked out by compile_rule
        # (Host, path[, method]) -> (the normal path, None when unchanged; the router or None).
        self._cache: dict[tuple[Any, ...], tuple[str | None, RouteMatch | None]] | None = (
            {} if "" not in reads and cache_size > 0 else None
        )
        self._by_method = "method" in reads
        self._cache_size = cache_size

    def route(self, request: Request) -> RouteMatch | None:
        """The router that takes `request` (None: none does); sets the target's normal form.
        Raises BadRequest for a refused target or Host."""
        cache = self._cache
        target = request.target
        if cache is None or target[:1] != "/":
            return self._route(request)
        raw = request.headers.raw
        host = raw[0][1] if raw and raw[0][0] == b"host" else _host_field(raw)
        query = target.find("?")
        path = target if query < 0 else target[:query]
        key = (host, path, request.method) if self._by_method else (host, path)
        hit = cache.get(key)
        if hit is not None:
            normal, match = hit
            if normal is not None:
                request.target = normal if query < 0 else normal + target[query:]
            return match
        match = self._route(request)  # raises on a refused target or Host: not cached
        if len(path) <= _CACHED_PATH_MAX and len(host) <= _CACHED_HOST_MAX:
            routed = request.target
            if routed is target:
                normal = None
            else:  # the normal form changes the path only: the query is as it was
                normal = routed if query < 0 else routed[: len(routed) - (len(target) - query)]
            if len(cache) >= self._cache_size:
                del cache[next(iter(cache))]  # the oldest entry
            cache[key] = (normal, match)
        return match

    def _route(self, request: Request) -> RouteMatch | None:
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
        if host and not (_valid_host(host) if len(host) <= _CACHED_HOST_MAX else _valid_authority(host)):
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
