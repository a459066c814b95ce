"""Internal services and the `api { }` block, Traefik's way.

A router may name a built-in service, `<name>@internal`, as Traefik's `api@internal` does:

    api@internal          the admin JSON API (runtime/admin/)
    ping@internal         a liveness probe: 200 {"status":"ok"}
    prometheus@internal   the Prometheus exposition (needs a `metrics { prometheus { } }` block)
    dashboard@internal    reserved: the web dashboard (not available yet)

Each one named becomes a `service:<name>@internal` node with an `InternalServiceConfig`, so it
is drawn by `graph --dot`, shown by `route`, and protected by the router's middlewares like any
other service. Naming a reserved one is an error at that line: what compiles, runs.

The `api { address = ..., middlewares = [...] }` block lowers to what a user could write by hand:
an entrypoint `api` on that address, and the routers `api@internal` (PathPrefix(`/api`)) and
`ping@internal` (Path(`/ping`)) on it, each with the block's middlewares and, as in Traefik,
the top priority. That entrypoint is not one of the defaults of routers that name no
entrypoint: nothing else is served on the admin address unless a router asks for it by name,
and nothing admin is served unless configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .diagnostics import Diagnostics
from .ir import Node
from .merge import SpanMap
from .schema import ApiConfig, EntrypointConfig, InternalServiceConfig, MetricsConfig
from .validate import validate_block

INTERNAL_SUFFIX = "@internal"
# The internal services the runtime serves, and those reserved for later work.
AVAILABLE: dict[str, str] = {
    "api": "the admin JSON API",
    "ping": "a liveness probe",
    "prometheus": "the Prometheus metrics exposition",
}
RESERVED: dict[str, str] = {"dashboard": "the web dashboard"}
API_ENTRYPOINT = "api"
# Traefik's own internal routers take the top priorities (2^31 - 2): a router of yours that you
# put on the admin entrypoint never shadows them.
INTERNAL_PRIORITY = 2**31 - 2
API_ROUTES: tuple[tuple[str, str, str], ...] = (
    # (router name, rule, internal service)
    ("api@internal", "PathPrefix(`/api`)", "api"),
    ("ping@internal", "Path(`/ping`)", "ping"),
    # Only with a `metrics { prometheus { } }` block (not manual_routing), as Traefik serves
    # /metrics on its API entrypoint.
    ("prometheus@internal", "Path(`/metrics`)", "prometheus"),
)


def internal_name(service: str) -> str | None:
    """`api` for `api@internal`; None for an ordinary service name."""
    return service[: -len(INTERNAL_SUFFIX)] if service.endswith(INTERNAL_SUFFIX) else None


def is_internal(node: Node) -> bool:
    return node.kind == "service" and isinstance(node.config, InternalServiceConfig)


def api_block(
    tree: Mapping[str, Any], spans: SpanMap, diags: Diagnostics, metrics: MetricsConfig | None = None
) -> tuple[ApiConfig, list[tuple[str, dict[str, Any]]]] | None:
    """The validated `api` block and the router bodies it stands for (None without one)."""
    body = tree.get("api")
    if body is None:
        return None
    if not isinstance(body, dict):
        diags.error('api must be a block, e.g. api { address = "127.0.0.1:9090" }', spans.find(("api",)))
        return None
    config = validate_block(ApiConfig, body, ("api",), spans, diags, what="api")
    if config is None:
        return None
    if config.dashboard:
        diags.error(
            "api: dashboard@internal (the web dashboard) is not available yet",
            spans.find(("api", "dashboard")),
            hint="remove `dashboard = true`; the JSON API is served at /api/gateway/",
        )
    routes = [
        (
            name,
            {
                "rule": rule,
                "service": f"{service}{INTERNAL_SUFFIX}",
                "entrypoints": [API_ENTRYPOINT],
                "priority": INTERNAL_PRIORITY,
                "middlewares": list(config.middlewares),
            },
        )
        for name, rule, service in API_ROUTES
        if _served(service, config, metrics)
    ]
    return config, routes


def _served(service: str, config: ApiConfig, metrics: MetricsConfig | None) -> bool:
    if service == "ping":
        return config.ping
    if service == "prometheus":
        return metrics is not None and not metrics.prometheus.manual_routing
    return True


def api_entrypoint(config: ApiConfig) -> EntrypointConfig:
    return EntrypointConfig(address=config.address)


def internal_service_nodes(
    routers: list[Node],
    paths: Mapping[str, Any],
    spans: SpanMap,
    diags: Diagnostics,
    invalid: set[str],
    metrics: MetricsConfig | None = None,
) -> list[Node]:
    """A node per internal service the routers name; errors for reserved and unknown ones, and
    for `prometheus@internal` without a `metrics` block (it would have nothing to serve)."""
    nodes: dict[str, Node] = {}
    for router in routers:
        service = str(getattr(router.config, "service", ""))
        name = internal_name(service)
        if name is None or f"service:{service}" in nodes:
            continue
        span = spans.find((*paths.get(router.id, ()), "service"))
        if name == "prometheus" and metrics is None:
            invalid.add(f"service:{service}")
            diags.error(
                f"router '{router.name}': {service} needs metrics to be configured",
                span,
                hint="add a `metrics { prometheus { } }` block",
            )
            continue
        if name in AVAILABLE:
            config = InternalServiceConfig.model_validate({"internal": name})
            nodes[f"service:{service}"] = Node.build(
                "service", service, config, {"protocol": "http", "internal": name}
            )
            continue
        invalid.add(f"service:{service}")
        if name in RESERVED:
            diags.error(
                f"router '{router.name}': {service} ({RESERVED[name]}) is not available yet",
                span,
                hint="internal services available now: "
                + ", ".join(f"{n}{INTERNAL_SUFFIX}" for n in AVAILABLE),
            )
        else:
            diags.error(
                f"router '{router.name}' uses unknown internal service '{service}'",
                span,
                hint="internal services: " + ", ".join(f"{n}{INTERNAL_SUFFIX}" for n in AVAILABLE),
            )
    return list(nodes.values())
