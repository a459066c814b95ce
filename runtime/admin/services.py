"""Internal service name -> handler, built with each graph generation.

A handler holds the generation that built it: a request routed on that generation reads that
generation's routers, services and backends for the whole response (pinned, like any request).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..api import Handler
from .dashboard import DashboardService
from .endpoints import ApiService
from .host import AdminHost
from .ping import ping
from .prometheus import PrometheusService

if TYPE_CHECKING:
    from ..graph import LiveGraph
    from ..observe.metrics import GatewayMetrics


def internal_service(
    name: str, graph: LiveGraph, host: AdminHost | None, metrics: GatewayMetrics | None = None
) -> Handler:
    if name == "ping":
        return ping
    if name == "prometheus":
        return PrometheusService(metrics)
    if name == "api":
        return ApiService(graph, host)
    if name == "dashboard":
        return DashboardService()
    if name == "acme-http":
        from ..acme.http01 import AcmeHttpService

        return AcmeHttpService(lambda: getattr(host, "acme_tokens", lambda: None)())
    raise ValueError(f"no internal service {name!r}")  # the compiler admits only the ones above
