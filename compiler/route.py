"""The `route` dry run: which router takes a request, its middleware chain and its service.

Uses the same compiled matchers and the same priority order as the runtime (`ordered_routers`),
and the same request-target rules (`request_target`: path normal form, Host check), so what
`a3s-gateway route` prints is what `run` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from .internal import is_internal
from .ir import IRGraph, Node
from .request_target import BadTarget, PathPolicy, valid_authority
from .rules import compile_http, compile_tcp, parse_rule
from .rules.priority import sort_key
from .schema import EntrypointConfig


@dataclass(frozen=True)
class MatchHeaders:
    pairs: tuple[tuple[str, str], ...] = ()

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [v for k, v in self.pairs if k.lower() == key]


@dataclass(frozen=True)
class HttpProbe:
    """A request as the matchers see it (the runtime's api.Request has the same attributes)."""

    method: str
    host: str
    path: str
    query: str
    headers: MatchHeaders = field(default_factory=MatchHeaders)
    client_ip: str = "127.0.0.1"

    @classmethod
    def from_url(cls, method: str, url: str, headers: Sequence[tuple[str, str]], client_ip: str) -> HttpProbe:
        """A request for `url` in absolute form: its authority is the Host (RFC 9112 §3.2.2);
        `/path` alone takes the Host from `headers`. A `#` stays in the target, as on the wire."""
        parts = urlsplit(url if "://" in url else "http://" + url, allow_fragments=False)
        given = [(k, v) for k, v in headers if k.lower() == "host"]
        host = parts.netloc or (given[0][1] if given else "")
        others = tuple((k, v) for k, v in headers if k.lower() != "host")
        host_fields = given if not parts.netloc else [("host", host)]
        all_headers = (*host_fields, *others)
        # The method as sent: `run` matches Method(`GET`) against `get` case-sensitively, so does `route`.
        return cls(method, host, parts.path or "/", parts.query, MatchHeaders(all_headers), client_ip)

    @property
    def target(self) -> str:
        return self.path + ("?" + self.query if self.query else "")

    def as_routed(self, paths: PathPolicy) -> HttpProbe:
        """The probe as the router sees it (runtime/router.py does the same): the target in the
        entrypoint's normal form, the Host checked. Raises BadTarget where `run` answers 400."""
        target = paths.target(self.method, self.target)
        if sum(1 for k, _ in self.headers.pairs if k.lower() == "host") > 1 or (
            self.host and not valid_authority(self.host)
        ):
            raise BadTarget("the Host header is not a valid authority (host[:port])")
        path, _, query = target.partition("?")
        return replace(self, path=path, query=query)


@dataclass(frozen=True)
class TcpProbe:
    """A TCP connection as the matchers see it. `tls`: whether it starts with a ClientHello (TLS
    routers match it) or not (routers without `tls` do); by default, whether it sent an SNI."""

    sni: str | None
    alpn: tuple[str, ...] = ()
    client_ip: str = "127.0.0.1"
    tls: bool | None = None

    def __post_init__(self) -> None:
        if self.tls is None:
            object.__setattr__(self, "tls", self.sni is not None)


def ordered_routers(graph: IRGraph, kind: str, entrypoint: str | None = None) -> list[Node]:
    """Routers of `kind` on `entrypoint` (all when None) in match order: priority, then name."""
    routers = [
        n
        for n in graph.nodes
        if n.kind == kind and (entrypoint is None or entrypoint in n.attrs.get("entrypoints", []))
    ]
    return sorted(routers, key=lambda n: sort_key(n.name, int(n.attrs.get("priority", 0))))


def entrypoint_paths(graph: IRGraph, entrypoint: str | None = None) -> PathPolicy | None:
    """The path rules of `entrypoint`; with None, those every HTTP entrypoint shares (None when
    they differ: the caller must name one)."""
    policies = {
        PathPolicy.from_config(n.config.http)
        for n in graph.by_kind("entrypoint")
        if isinstance(n.config, EntrypointConfig)
        and n.config.protocol == "http"
        and (entrypoint is None or n.name == entrypoint)
    }
    if len(policies) > 1:
        return None
    return policies.pop() if policies else PathPolicy()


def _compiled(node: Node, kind: str) -> Callable[[Any], bool]:
    parsed = parse_rule(str(node.attrs.get("rule", "")), "tcp" if kind == "tcp_router" else "http")
    assert parsed.ast is not None, "rules are validated at compile time"
    return compile_tcp(parsed.ast) if kind == "tcp_router" else compile_http(parsed.ast)


def route_http(graph: IRGraph, probe: HttpProbe, entrypoint: str | None = None) -> Node | None:
    for node in ordered_routers(graph, "router", entrypoint):
        if _compiled(node, "router")(probe):
            return node
    return None


def route_tcp(graph: IRGraph, probe: TcpProbe, entrypoint: str | None = None) -> Node | None:
    """As the runtime (runtime/l4/routes.py): a TLS connection is matched by the routers with a
    `tls` block, a plaintext one by the others."""
    for node in ordered_routers(graph, "tcp_router", entrypoint):
        if (getattr(node.config, "tls", None) is not None) == probe.tls and _compiled(node, "tcp_router")(
            probe
        ):
            return node
    return None


def describe(graph: IRGraph, router: Node) -> dict[str, Any]:
    """What the route dry run prints: the router, its chain and its service."""
    service = str(getattr(router.config, "service", ""))
    middlewares = []
    for name in getattr(router.config, "middlewares", []):
        node = graph.node(f"middleware:{name}")
        middlewares.append({"name": name, "type": node.attrs.get("type") if node else None})
    service_node = graph.node(f"service:{service}")
    servers: list[str] = []
    if service_node is not None:
        lb = getattr(service_node.config, "load_balancer", None)
        servers = [s.url or s.address for s in (lb.servers if lb else [])]
    return {
        "router": router.name,
        "kind": router.kind,
        "rule": router.attrs.get("rule"),
        "priority": router.attrs.get("priority"),
        "entrypoints": router.attrs.get("entrypoints", []),
        "middlewares": middlewares,
        "service": service,
        "servers": servers,
        "scaled": any(n.attrs.get("service") == service for n in graph.by_kind("scaler")),
        "internal": service_node is not None and is_internal(service_node),
    }
