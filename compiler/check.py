"""Whole-graph checks: references, protocols, cycles, addresses, revisions, unused nodes.

Runs after lowering, on every node that validated, so one broken block still lets the checks
report problems elsewhere. Each finding points at the key it is about (e.g. the `service` key of
a router, the third element of its `middlewares` list).
"""

from __future__ import annotations

from typing import Any

from ..stdlib import registry
from .diagnostics import Diagnostics, did_you_mean
from .internal import is_internal
from .ir import Node
from .lower import Lowered
from .merge import SpanMap
from .schema import EntrypointConfig, LoadBalancerConfig, ScalingConfig, ServiceConfig
from .validate import Path


def check(lowered: Lowered, spans: SpanMap, diags: Diagnostics) -> None:
    _check_router_references(lowered, spans, diags)
    _check_udp_entrypoints(lowered, spans, diags)
    _check_service_references(lowered, spans, diags)
    _check_service_cycles(lowered, spans, diags)
    _check_addresses(lowered, spans, diags)
    _check_backends(lowered, spans, diags)
    _check_unused(lowered, spans, diags)


def _by_kind(lowered: Lowered, kind: str) -> dict[str, Node]:
    return {n.name: n for n in lowered.nodes.values() if n.kind == kind}


def _configured_services(lowered: Lowered) -> dict[str, Node]:
    """Services with a `services` block (not the gateway's own `<name>@internal` ones)."""
    return {name: n for name, n in _by_kind(lowered, "service").items() if not is_internal(n)}


def _at(lowered: Lowered, node: Node, spans: SpanMap, *keys: str | int) -> Any:
    path: Path = (*lowered.paths.get(node.id, ()), *keys)
    return spans.find(path)


def _check_router_references(lowered: Lowered, spans: SpanMap, diags: Diagnostics) -> None:
    services = _by_kind(lowered, "service")
    middlewares = _by_kind(lowered, "middleware")
    for router in lowered.nodes.values():
        if router.kind not in ("router", "tcp_router", "udp_router"):
            continue
        protocol = {"router": "http", "tcp_router": "tcp", "udp_router": "udp"}[router.kind]
        what = f"{router.kind.replace('_', ' ')} '{router.name}'"
        service_name = getattr(router.config, "service", "")
        service = services.get(service_name)
        if service is None and f"service:{service_name}" in lowered.invalid:
            pass
        elif service is None:
            hint = did_you_mean(service_name, services) or _known("services", services)
            diags.error(
                f"{what} uses unknown service '{service_name}'",
                _at(lowered, router, spans, "service"),
                hint=hint,
            )
        elif _service_protocol(service) != ("http" if protocol == "http" else "tcp"):
            diags.error(
                f"{what} is {protocol.upper()} but service '{service_name}' has "
                f"{_service_protocol(service).upper()} servers",
                _at(lowered, router, spans, "service"),
                hint="HTTP services list servers by url, TCP and UDP services by address",
            )
        elif protocol == "udp":
            _check_udp_service(lowered, router, service, spans, diags, what)
        for index, name in enumerate(getattr(router.config, "middlewares", [])):
            mw = middlewares.get(name)
            span = _at(lowered, router, spans, "middlewares", index)
            if mw is None and f"middleware:{name}" in lowered.invalid:
                continue
            if mw is None:
                hint = did_you_mean(name, middlewares) or _known("middlewares", middlewares)
                diags.error(f"{what} uses unknown middleware '{name}'", span, hint=hint)
            elif protocol not in mw.attrs.get("protocols", ["http"]):
                diags.error(
                    f"{what}: middleware '{name}' ({mw.attrs['type']}) does not apply to {protocol.upper()} routers",
                    span,
                )


def _check_udp_service(
    lowered: Lowered, router: Node, service: Node, spans: SpanMap, diags: Diagnostics, what: str
) -> None:
    """Active health checks probe by TCP connect, which says nothing of a UDP server: a UDP
    router's service is checked passively (a backend that answers ICMP port unreachable)."""
    config = service.config
    lb = getattr(config, "load_balancer", None)
    if lb is not None and lb.health_check is not None:
        diags.error(
            f"{what} uses service '{service.name}', whose health_check probes by TCP",
            _at(lowered, service, spans, "load_balancer", "health_check"),
            hint="UDP backends are checked passively: use passive_health (a backend that refuses "
            "datagrams is marked), or a separate service for the TCP routers",
        )
    tcp_routers = _by_kind(lowered, "tcp_router").values()
    if any(getattr(r.config, "service", None) == service.name for r in tcp_routers):
        return  # the TCP keys act on its TCP connections
    timeouts = getattr(config, "timeouts", None)
    set_here: list[tuple[str, ...]] = [
        (key,) for key in ("proxy_protocol", "ftp") if key in config.model_fields_set
    ]
    if timeouts is not None:
        set_here += [
            ("timeouts", k) for k in ("connect", "termination_delay") if k in timeouts.model_fields_set
        ]
    for key in set_here:
        diags.error(
            f"{what} uses service '{service.name}', whose '{'.'.join(key)}' applies to TCP connections only",
            _at(lowered, service, spans, *key),
            hint="a UDP session opens no connection: remove it, or route TCP to this service too",
        )


def _check_udp_entrypoints(lowered: Lowered, spans: SpanMap, diags: Diagnostics) -> None:
    """As Traefik, a UDP router has no rule: one router (one service) per UDP entrypoint."""
    owners: dict[str, str] = {}
    for router in sorted(_by_kind(lowered, "udp_router").values(), key=lambda n: n.name):
        for ep in router.attrs.get("entrypoints", ()):
            if ep in owners:
                diags.error(
                    f"udp router '{router.name}' and udp router '{owners[ep]}' both serve entrypoint '{ep}'",
                    _at(lowered, router, spans),
                    hint="UDP routers have no rules: give each UDP entrypoint one router, or give "
                    "this router its own entrypoints",
                )
            else:
                owners[ep] = router.name


def _service_protocol(service: Node) -> str:
    return str(service.attrs.get("protocol", "http"))


def _known(what: str, names: Any) -> str:
    return f"known {what}: " + (", ".join(sorted(names)) or "none")


def _kind_of(service: Node | None) -> str | None:
    """The service kind of a service (`model_router`), None for a pool of servers."""
    config = service.config if service is not None else None
    return config.kind if isinstance(config, ServiceConfig) else None


def _check_service_references(lowered: Lowered, spans: SpanMap, diags: Diagnostics) -> None:
    services = _by_kind(lowered, "service")
    for service in _configured_services(lowered).values():
        config = service.config
        assert isinstance(config, ServiceConfig)
        if config.kind is not None:
            _check_kind_references(lowered, service, config, services, spans, diags)
        for key, ref in (("mirror", config.mirror), ("failover", config.failover)):
            if ref is not None and f"service:{ref.service}" in lowered.invalid:
                continue
            if ref is not None and _kind_of(services.get(ref.service)) is not None:
                diags.error(
                    f"service '{service.name}': {key} target '{ref.service}' is a "
                    f"{_kind_of(services[ref.service])} service, not a pool of servers",
                    _at(lowered, service, spans, key, "service"),
                )
            elif ref is not None and ref.service not in services:
                hint = did_you_mean(ref.service, services) or _known("services", services)
                diags.error(
                    f"service '{service.name}': {key} target service '{ref.service}' is not defined",
                    _at(lowered, service, spans, key, "service"),
                    hint=hint,
                )
            elif ref is not None and ref.service == service.name:
                diags.error(
                    f"service '{service.name}' cannot {key} to itself",
                    _at(lowered, service, spans, key, "service"),
                )


def _check_kind_references(
    lowered: Lowered,
    service: Node,
    config: ServiceConfig,
    services: dict[str, Node],
    spans: SpanMap,
    diags: Diagnostics,
) -> None:
    """The services a kind's block names (a model_router's targets) exist and have servers."""
    assert config.kind is not None
    kind = registry.lookup("service", config.kind)
    if kind is None:
        return
    options = kind.config.model_validate(config.kind_options)
    references: list[tuple[Path, str]] = getattr(options, "service_references", list)()
    what = f"service '{service.name}'"
    for at, name in references:
        span = _at(lowered, service, spans, config.kind, *at)
        target = services.get(name)
        if target is None and f"service:{name}" in lowered.invalid:
            continue
        if target is None:
            hint = did_you_mean(name, services) or _known("services", services)
            diags.error(f"{what}: {config.kind} target service '{name}' is not defined", span, hint=hint)
        elif target is service or _kind_of(target) is not None:
            diags.error(
                f"{what}: {config.kind} target '{name}' is a {_kind_of(target)} service, not a pool of servers",
                span,
                hint="name the services that have the servers",
            )
        elif _service_protocol(target) != "http":
            diags.error(f"{what}: {config.kind} target '{name}' is not an HTTP service", span)


def _check_service_cycles(lowered: Lowered, spans: SpanMap, diags: Diagnostics) -> None:
    """Failover and mirror chains must end: a cycle would loop a request (or its copy) forever."""
    graph: dict[str, list[str]] = {}
    for edge in lowered.edges:
        if edge.label in ("mirror", "failover") and edge.src != edge.dst:
            graph.setdefault(edge.src, []).append(edge.dst)
    reported: set[frozenset[str]] = set()
    for start in sorted(graph):
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        while stack:
            current, trail = stack.pop()
            for nxt in graph.get(current, []):
                if nxt == start:
                    cycle = frozenset(trail)
                    if cycle not in reported:
                        reported.add(cycle)
                        names = " -> ".join(t.split(":", 1)[1] for t in [*trail, start])
                        node = lowered.nodes[start]
                        diags.error(f"failover/mirror cycle: {names}", _at(lowered, node, spans))
                elif nxt not in trail:
                    stack.append((nxt, [*trail, nxt]))


def _check_addresses(lowered: Lowered, spans: SpanMap, diags: Diagnostics) -> None:
    seen: dict[tuple[str, int], Node] = {}
    for ep in sorted(_by_kind(lowered, "entrypoint").values(), key=lambda n: n.name):
        config = ep.config
        assert isinstance(config, EntrypointConfig)
        transport = "udp" if config.protocol == "udp" else "tcp"
        for (other_transport, port), other in seen.items():
            other_cfg = other.config
            assert isinstance(other_cfg, EntrypointConfig)
            same_host = (
                config.host == other_cfg.host
                or "0.0.0.0" in (config.host, other_cfg.host)
                or "::"
                in (
                    config.host,
                    other_cfg.host,
                )
            )
            if other_transport == transport and port == config.port and same_host:
                diags.error(
                    f"entrypoint '{ep.name}' listens on {config.address}, which entrypoint "
                    f"'{other.name}' already uses ({other_cfg.address})",
                    _at(lowered, ep, spans, "address"),
                )
        seen[(transport, config.port)] = ep


def _check_l4_strategy(
    lowered: Lowered, service: Node, spans: SpanMap, diags: Diagnostics, name: str
) -> None:
    """A TCP or UDP service balances connections: a strategy that picks by the HTTP request
    (`conversation-affinity`, `prefix-cache`) would find none there, and its options would not act."""
    kind = registry.lookup("balancer", name)
    if kind is None or "tcp" in kind.protocols:
        return
    usable = sorted(k.name for k in registry.kinds() if k.category == "balancer" and "tcp" in k.protocols)
    diags.error(
        f"service '{service.name}': strategy '{name}' picks by the HTTP request; "
        "a TCP or UDP service balances connections",
        _at(lowered, service, spans, "load_balancer", "strategy"),
        hint=_known("strategies", usable),
    )


def _check_backends(lowered: Lowered, spans: SpanMap, diags: Diagnostics) -> None:
    strategies = registry.names("balancer")
    for service in _configured_services(lowered).values():
        config = service.config
        assert isinstance(config, ServiceConfig)
        if config.kind is not None:
            continue  # it has no servers: it sends requests to other services
        what = f"service '{service.name}'"
        lb: LoadBalancerConfig | None = config.load_balancer
        if lb is not None and lb.strategy not in strategies:
            hint = did_you_mean(lb.strategy, strategies) or _known("strategies", strategies)
            diags.error(
                f"{what}: unknown load-balancing strategy '{lb.strategy}'",
                _at(lowered, service, spans, "load_balancer", "strategy"),
                hint=hint,
            )
        elif lb is not None and _service_protocol(service) == "tcp":
            _check_l4_strategy(lowered, service, spans, diags, lb.strategy)
        revision_names = [r.name for r in config.revisions]
        for index, revision in enumerate(config.revisions):
            if revision.strategy is not None and revision.strategy not in strategies:
                diags.error(
                    f"{what}: revision '{revision.name}' has unknown strategy '{revision.strategy}'",
                    _at(lowered, service, spans, "revisions", index, "strategy"),
                    hint=did_you_mean(revision.strategy, strategies),
                )
            if revision_names.count(revision.name) > 1 and revision_names.index(revision.name) != index:
                diags.error(
                    f"{what}: revision '{revision.name}' is defined twice",
                    _at(lowered, service, spans, "revisions", index),
                )
        if config.revisions and config.rollout is None:
            total = sum(r.traffic_percent for r in config.revisions)
            if abs(total - 100) > 1e-9:
                diags.error(
                    f"{what}: revision traffic_percent values add up to {total:g}, not 100",
                    _at(lowered, service, spans, "revisions"),
                )
        if config.rollout is not None:
            _check_rollout(lowered, service, config, revision_names, spans, diags)
        if (
            config.revisions
            and config.scaling is not None
            and all(r.scaling is None for r in config.revisions)
        ):
            diags.warning(
                f"{what}: no revision scales, so this scaling block is unused; the revisions' servers "
                "take the traffic",
                _at(lowered, service, spans, "scaling"),
                hint="give a revision `scaling = {}` to scale it with this block (or an object to "
                "override some of it, e.g. its executor's command)",
            )
        for index, revision in enumerate(config.revisions):
            if not revision.servers and not _creates_replicas(revision.scaling):
                diags.error(
                    f"{what}: revision '{revision.name}' has no backends",
                    _at(lowered, service, spans, "revisions", index),
                    hint="give it servers = [...], or `scaling = { ... }` with an executor that creates "
                    "replicas (process, kubernetes, http)",
                )
        has_servers = bool(lb and lb.servers) or bool(config.revisions)
        if not has_servers and not _creates_replicas(config.scaling):
            diags.error(
                f"{what} has no backends",
                _at(lowered, service, spans),
                hint='add load_balancer { servers = [{ url = "http://..." }] }, revisions, or scaling with an '
                "executor that creates replicas (process, kubernetes, http)",
            )


def _creates_replicas(scaling: ScalingConfig | None) -> bool:
    if scaling is None:
        return False
    executor = registry.lookup("executor", scaling.executor)
    if executor is None:
        return True  # an unknown executor is reported where it is named; do not pile on
    return executor.creates_replicas


def _check_rollout(
    lowered: Lowered,
    service: Node,
    config: ServiceConfig,
    revisions: list[str],
    spans: SpanMap,
    diags: Diagnostics,
) -> None:
    rollout = config.rollout
    assert rollout is not None
    what = f"service '{service.name}'"
    if not revisions:
        diags.error(
            f"{what}: rollout from '{rollout.from_}' to '{rollout.to}' needs revisions named "
            f"'{rollout.from_}' and '{rollout.to}', but the service declares none",
            _at(lowered, service, spans, "rollout"),
            hint=f'add revisions = [{{ name = "{rollout.from_}", servers = [...] }}, '
            f'{{ name = "{rollout.to}", servers = [...] }}]',
        )
        return
    for key, name in (("from", rollout.from_), ("to", rollout.to)):
        if name not in revisions:
            diags.error(
                f"{what}: rollout {key} '{name}' is not a revision of this service",
                _at(lowered, service, spans, "rollout", key),
                hint=did_you_mean(name, revisions) or "revisions: " + ", ".join(revisions),
            )
    if rollout.from_ == rollout.to:
        diags.error(
            f"{what}: rollout from and to are the same revision", _at(lowered, service, spans, "rollout")
        )


def _check_unused(lowered: Lowered, spans: SpanMap, diags: Diagnostics) -> None:
    used: set[str] = set()
    for edge in lowered.edges:
        if edge.src.split(":", 1)[0] in ("router", "tcp_router", "udp_router"):
            used.add(edge.dst)
    # Services reached through mirror/failover (or a model_router) from a used service are used too.
    onward: dict[str, list[str]] = {}  # by source: one pass over the edges, not one per service
    for edge in lowered.edges:
        if edge.label in ("mirror", "failover", "routes"):
            onward.setdefault(edge.src, []).append(edge.dst)
    frontier = [n for n in used if n.startswith("service:")]
    while frontier:
        for dst in onward.get(frontier.pop(), ()):
            if dst not in used:
                used.add(dst)
                frontier.append(dst)
    for node in lowered.nodes.values():
        if node.kind in ("service", "middleware") and node.id not in used:
            diags.warning(f"{node.kind} '{node.name}' is not used by any router", _at(lowered, node, spans))
