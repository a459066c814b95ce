"""Health, routes, services and backends, read from one graph generation.

Every function reads the generation the request was routed on (the handler's), so one answer
never mixes two configurations. Nothing here is on the data path: it reads the same objects
the balancers read (`Backend.healthy`, `in_flight`, the latency window) and the upstream pools'
statistics.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import TYPE_CHECKING, Any

from ...compiler.internal import is_internal
from ...compiler.schema import RouterConfig, ServiceConfig
from ..api import LATENCY_WINDOW, Backend
from ..upstream.pool import parse_origin
from .host import AdminHost

if TYPE_CHECKING:
    from ..graph import LiveGraph
    from ..l4 import TcpService
    from ..service import HttpService


def health(graph: LiveGraph, host: AdminHost | None) -> dict[str, Any]:
    out: dict[str, Any] = host.health() if host is not None else {"status": "ok"}
    out["generation"] = graph.generation  # the one the services below are read from, not the newest
    out["services"] = {name: _service_health(service) for name, service in sorted(graph.services.items())}
    # TCP and UDP services (docs/l4.md), beside the HTTP ones: their names share one namespace.
    out["services"].update(
        (name, _l4_health(service)) for name, service in sorted(graph.tcp_services.items())
    )
    if out["status"] == "ok" and any(s["status"] == "down" for s in out["services"].values()):
        out["status"] = "degraded"
    return out


def _service_health(service: HttpService) -> dict[str, Any]:
    backends = [
        {"url": b.url, "healthy": b.healthy, "draining": b.draining, **_agent_state(service, b)}
        for b in service.backends
    ]
    scaled = service.front is not None
    status = "up" if scaled or service.has_available() else "down"
    return {"status": status, "scaled": scaled, "backends": backends}


def _l4_health(service: TcpService) -> dict[str, Any]:
    backends = [{"url": b.url, "healthy": b.healthy, "draining": b.draining} for b in service.backends]
    return {"status": "up" if service.has_available() else "down", "scaled": False, "backends": backends}


def routes(graph: LiveGraph, _host: AdminHost | None = None) -> list[dict[str, Any]]:
    out = []
    for node in graph.ir.by_kind("router"):
        config = node.config
        assert isinstance(config, RouterConfig)
        service = graph.ir.node(f"service:{config.service}")
        out.append(
            {
                "name": node.name,
                "rule": node.attrs.get("rule", config.rule),
                "priority": node.attrs.get("priority"),
                "entrypoints": list(node.attrs.get("entrypoints", [])),
                "middlewares": list(config.middlewares),
                "service": config.service,
                "internal": service is not None and is_internal(service),
            }
        )
    return sorted(out, key=lambda r: (-int(r["priority"] or 0), r["name"]))


def services(graph: LiveGraph, _host: AdminHost | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for node in graph.ir.by_kind("service"):
        entry: dict[str, Any] = {"name": node.name, "protocol": node.attrs.get("protocol", "http")}
        if is_internal(node):
            entry.update(kind="internal", status="up", backends=[])
        elif node.name in graph.services:
            service = graph.services[node.name]
            config = node.config
            assert isinstance(config, ServiceConfig)
            strategy = config.load_balancer.strategy if config.load_balancer else "round-robin"
            entry.update(kind="load-balancer", strategy=strategy, **_service_health(service))
            entry["backends"] = [_backend(graph, node.name, b) for b in service.backends]
        elif node.name in graph.tcp_services:  # a TCP or UDP service: relayed connections, sessions
            l4 = graph.tcp_services[node.name]
            config = node.config
            assert isinstance(config, ServiceConfig)
            strategy = config.load_balancer.strategy if config.load_balancer else "round-robin"
            entry.update(kind="load-balancer", strategy=strategy, **_l4_health(l4))
            entry["backends"] = [_l4_backend(b) for b in l4.backends]
        elif node.name in graph.service_kinds:  # a model_router: it routes to the services above
            handler = graph.service_kinds[node.name]
            config = node.config
            assert isinstance(config, ServiceConfig)
            entry.update(kind=config.kind, status="up", backends=[])
            statistics = getattr(handler, "statistics", None)
            if statistics is not None:
                entry["statistics"] = statistics()
        else:
            entry.update(kind=node.attrs.get("protocol", "http"), status="not served", backends=[])
        out.append(entry)
    return out


def backends(graph: LiveGraph, _host: AdminHost | None = None) -> list[dict[str, Any]]:
    return [
        {"service": name, **_backend(graph, name, backend)}
        for name, service in sorted(graph.services.items())
        for backend in service.backends
    ] + [
        {"service": name, **_l4_backend(backend)}
        for name, service in sorted(graph.tcp_services.items())
        for backend in service.backends
    ]


def _l4_backend(backend: Backend) -> dict[str, Any]:
    """A TCP or UDP server: `in_flight` counts its relayed connections (UDP: its sessions), each
    one connection of the gateway's to it, and none idle (no pool)."""
    return _server(backend, backend.in_flight, 0)


def _backend(graph: LiveGraph, service: str, backend: Backend) -> dict[str, Any]:
    idle = active = 0
    client = graph.clients.get(service)
    stats = getattr(client, "statistics", None)
    if stats is not None:
        origin = _origin(backend.url)
        for pool in stats().pools:
            if pool.origin == origin:
                idle, active = idle + pool.idle, active + pool.active
    return {**_server(backend, idle + active, idle), **_agent_state(graph.services[service], backend)}


def _agent_state(service: HttpService, backend: Backend) -> dict[str, str]:
    """`agent_state` (loading, ready, busy, error, unreachable) when `agent_health` judges it."""
    state = service.health.state(backend.key)
    return {} if state is None else {"agent_state": state}


def _server(backend: Backend, open_connections: int, idle: int) -> dict[str, Any]:
    return {
        "url": backend.url,
        "healthy": backend.healthy,
        "draining": backend.draining,
        "weight": backend.weight,
        "revision": backend.revision,
        "in_flight": backend.in_flight,
        "open_connections": open_connections,
        "idle_connections": idle,
        "latency": latency(backend),
    }


def latency(backend: Backend) -> dict[str, Any]:
    """The backend's time to the response head: the p50 and p99 of its last LATENCY_WINDOW
    exchanges, and the peak-EWMA as of the last one (milliseconds; null before any exchange)."""
    quantiles = backend.latency_quantiles(0.5, 0.99)
    if quantiles is None:
        return {"samples": 0, "p50_ms": None, "p99_ms": None, "ewma_ms": None}
    p50, p99 = quantiles
    return {
        "samples": min(backend.exchanges, LATENCY_WINDOW),
        "p50_ms": _ms(p50),
        "p99_ms": _ms(p99),
        "ewma_ms": _ms(backend.latency_ewma),
    }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _origin(url: str) -> str:
    try:
        return str(parse_origin(url)[0])
    except ValueError:
        return url


def version(_graph: LiveGraph | None = None, _host: AdminHost | None = None) -> dict[str, Any]:
    try:
        gateway = metadata.version("a3s-gateway")
    except metadata.PackageNotFoundError:
        gateway = "unknown"
    return {
        "version": gateway,
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(terse=True),
    }
