"""Internal service name -> handler, built with each graph generation.

A handler holds the generation that built it: a request routed on that generation reads that
generation's routers, services and backends for the whole response (pinned, like any request).

Each service's module is imported when a graph first routes to it: a gateway without `api`,
`dashboard` or `prometheus` never loads the admin API's modules (issue 17's idle memory,
tests/test_worker_imports.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..api import Handler
from .host import AdminHost
from .ping import ping

if TYPE_CHECKING:
    from ..graph import LiveGraph
    from ..observe.metrics import GatewayMetrics


def internal_service(
    name: str, graph: LiveGraph, host: AdminHost | None, metrics: GatewayMetrics | None = None
) -> Handler:
    if name == "ping":
        return ping
    if name == "prometheus":
        from .prometheus import PrometheusService

        return PrometheusService(metrics)
    if name == "api":
        from .endpoints import ApiService

        return ApiService(graph, host)
    if name == "dashboard":
        from .dashboard import DashboardService

        return DashboardService()
    if name == "acme-http":
        from ..acme.http01 import AcmeHttpService

        return AcmeHttpService(lambda: getattr(host, "acme_tokens", lambda: None)())
    raise ValueError(f"no internal service {name!r}")  # the compiler admits only the ones above
