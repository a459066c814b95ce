"""TCP router tables: one per TCP entrypoint, matched once per connection.

As Traefik (pkg/server/router/tcp/router.go), a TCP entrypoint has two tables: the routers with
a `tls` block match TLS clients (the SNI and ALPN of their ClientHello), the routers without
match plaintext clients, whose only HostSNI rule is the catch-all HostSNI(`*`) (the compiler
refuses any other on a router without `tls`). When an entrypoint has no TLS router, the
gateway does not wait for the client to speak: server-first protocols (MySQL, SMTP) work.

Routers are tried in the order `a3s-gateway route --tcp` uses (`ordered_routers`: priority,
then name), with the matchers it compiles (`compile_tcp`), so the dry run and the runtime agree.
TLS routers are filed by their HostSNI names (compiler/rules/index.py): a ClientHello is tried
against the routers its server name could match, in that same order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...compiler.ir import IRGraph
from ...compiler.route import TcpProbe, ordered_routers
from ...compiler.rules import Placement, RuleIndex, compile_tcp, parse_rule, placements
from ...compiler.schema import TcpRouterConfig

__all__ = ["TcpRoute", "TcpRouterTable", "build_tcp_tables", "tls_mode"]


def tls_mode(config: TcpRouterConfig) -> str | None:
    """ "passthrough", "terminate", or None for a router of plaintext connections."""
    if config.tls is None:
        return None
    return "passthrough" if config.tls.passthrough else "terminate"


@dataclass(frozen=True, slots=True)
class TcpRoute:
    router: str
    service: Any  # a TcpService (service.py)
    tls: str | None
    # The tcp-filter states of the router's middlewares, in order (stdlib/middlewares/tcp_filter.py).
    filters: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class TcpRouterTable:
    entrypoint: str
    tls_routes: tuple[tuple[Callable[[TcpProbe], bool], TcpRoute], ...]
    plain_routes: tuple[tuple[Callable[[TcpProbe], bool], TcpRoute], ...]
    # The placements of each TLS route's rule, in order; the index is built from them.
    tls_placements: tuple[frozenset[Placement], ...]
    _tls_index: RuleIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        assert len(self.tls_placements) == len(self.tls_routes)
        object.__setattr__(self, "_tls_index", RuleIndex(self.tls_placements))

    @property
    def needs_peek(self) -> bool:
        """Whether a connection's first bytes must be read before routing it."""
        return bool(self.tls_routes)

    def route(self, probe: TcpProbe) -> TcpRoute | None:
        if probe.tls:
            routes = self.tls_routes
            for position in self._tls_index.tcp_candidates(probe):
                matches, route = routes[position]
                if matches(probe):
                    return route
            return None
        for matches, route in self.plain_routes:  # only HostSNI(`*`) rules: nothing to index
            if matches(probe):
                return route
        return None


def build_tcp_tables(
    ir: IRGraph,
    entrypoints: Sequence[str],
    services: Mapping[str, Any],
    filters: Mapping[str, Any],
) -> dict[str, TcpRouterTable]:
    """The table of each TCP entrypoint; routers whose service is not built are skipped."""
    tables: dict[str, TcpRouterTable] = {}
    for entrypoint in entrypoints:
        tls: list[tuple[Callable[[TcpProbe], bool], TcpRoute]] = []
        tls_placements: list[frozenset[Placement]] = []
        plain: list[tuple[Callable[[TcpProbe], bool], TcpRoute]] = []
        for node in ordered_routers(ir, "tcp_router", entrypoint):
            config = node.config
            assert isinstance(config, TcpRouterConfig)
            service = services.get(config.service)
            if service is None:
                continue
            parsed = parse_rule(str(node.attrs.get("rule", config.rule)), "tcp")
            assert parsed.ast is not None, "rules are validated at compile time"
            chain = tuple(filters[name] for name in config.middlewares if name in filters)
            route = TcpRoute(node.name, service, tls_mode(config), chain)
            (tls if route.tls else plain).append((compile_tcp(parsed.ast), route))
            if route.tls:
                tls_placements.append(placements(parsed.ast, "tcp"))
        tables[entrypoint] = TcpRouterTable(entrypoint, tuple(tls), tuple(plain), tuple(tls_placements))
    return tables
