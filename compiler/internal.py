"""Internal services and the `api { }` block, Traefik's way.

A router may name a built-in service, `<name>@internal`, as Traefik's `api@internal` does:

    api@internal          the admin JSON API (runtime/admin/)
    ping@internal         a liveness probe: 200 {"status":"ok"}
    dashboard@internal    the web dashboard (runtime/admin/dashboard.py), under /dashboard/
    prometheus@internal   the Prometheus exposition (needs a `metrics { prometheus { } }` block)

Each one named becomes a `service:<name>@internal` node with an `InternalServiceConfig`, so it
is drawn by `graph --dot`, shown by `route`, and protected by the router's middlewares like any
other service. Naming any other `@internal` service is an error at that line.

The `api { address = ..., middlewares = [...] }` block lowers to what a user could write by hand:
an entrypoint `api` on that address, and the routers `api@internal` (PathPrefix(`/api`)) and
`ping@internal` (Path(`/ping`)) on it, and with `dashboard = true` the router
`dashboard@internal` (PathPrefix(`/dashboard`)), each with the block's middlewares and, as in
Traefik, the top priority. That entrypoint is not one of the defaults of routers that name no
entrypoint: nothing else is served on the admin address unless a router asks for it by name,
and nothing admin is served unless configured.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .diagnostics import Diagnostics
from .ir import Node
from .schema import (
    ApiConfig,
    EntrypointConfig,
    InternalServiceConfig,
    MetricsConfig,
    PrometheusConfig,
    Settings,
)
from .validate import validate_block

if TYPE_CHECKING:  # merge.py reads the files: a running gateway does not load it
    from .merge import SpanMap

INTERNAL_SUFFIX = "@internal"
# The internal services the runtime serves: the names InternalServiceConfig accepts.
AVAILABLE: tuple[str, ...] = typing.get_args(InternalServiceConfig.model_fields["internal"].annotation)
API_ENTRYPOINT = "api"
# The latency buckets (seconds) of the metrics that `dashboard = true` switches on.
DASHBOARD_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Traefik's own internal routers take the top priorities (2^31 - 2): a router of yours that you
# put on the admin entrypoint never shadows them.
INTERNAL_PRIORITY = 2**31 - 2
# Traefik's router for HTTP-01 challenges: above every other router, on the challenge entrypoints.
ACME_HTTP = "acme-http@internal"
ACME_HTTP_ROUTER: dict[str, Any] = {
    "rule": "PathPrefix(`/.well-known/acme-challenge/`)",
    "service": ACME_HTTP,
    "priority": 2**31 - 1,
}
API_ROUTES: tuple[tuple[str, str, str], ...] = (
    # (router name, rule, internal service)
    ("api@internal", "PathPrefix(`/api`)", "api"),
    ("ping@internal", "Path(`/ping`)", "ping"),
    ("dashboard@internal", "PathPrefix(`/dashboard`)", "dashboard"),
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
    if service == "dashboard":
        return config.dashboard
    if service == "prometheus":
        return metrics is not None and not metrics.prometheus.manual_routing
    return True


def with_dashboard_metrics(tree: Mapping[str, Any], settings: Settings) -> Settings:
    """`api { dashboard = true }` without a `metrics` block switches the collection on: the
    dashboard's rates and latencies are read from the metrics (never counted a second time).
    Only collection: no `/metrics` route is added (`manual_routing`), and the router series are
    recorded, since the dashboard shows each router's rate. Its p50 and p99 are estimated within
    histogram buckets, so these are finer than Traefik's four default bounds."""
    api = tree.get("api")
    if settings.metrics is not None or not isinstance(api, dict) or api.get("dashboard") is not True:
        return settings
    prometheus = PrometheusConfig(
        manual_routing=True, add_routers_labels=True, buckets=list(DASHBOARD_BUCKETS)
    )
    return settings.model_copy(update={"metrics": MetricsConfig(prometheus=prometheus)})


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
    """A node per internal service the routers name; errors for unknown ones, and
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
        diags.error(
            f"router '{router.name}' uses unknown internal service '{service}'",
            span,
            hint="internal services: " + ", ".join(f"{n}{INTERNAL_SUFFIX}" for n in AVAILABLE),
        )
    return list(nodes.values())
