"""prometheus@internal: the Prometheus exposition of the gateway's registry.

Served at `/metrics` on the `api` block's address (unless `manual_routing`), or wherever a
router names it; the text format, or OpenMetrics when the scraper's Accept asks for it.
GET and HEAD; any other method gets 405.
"""

from __future__ import annotations

from ..api import Headers, Request, Response, iter_body
from ..observe.metrics import GatewayMetrics
from .responses import error, method_not_allowed

_ALLOW = ("GET", "HEAD")


def exposition(metrics: GatewayMetrics | None, request: Request) -> Response:
    """The scrape answer, or a 404 JSON error when metrics are not configured."""
    if metrics is None:
        return error(404, "not_found", "metrics are not configured: add a metrics { prometheus { } } block")
    data, content_type = metrics.exposition(request.headers.get("accept"))
    headers = Headers.from_pairs(
        [("content-type", content_type), ("content-length", str(len(data))), ("cache-control", "no-store")]
    )
    return Response(200, headers, iter_body(data), generated=True)


class PrometheusService:
    """The handler of `prometheus@internal`."""

    def __init__(self, metrics: GatewayMetrics | None) -> None:
        self.metrics = metrics

    async def __call__(self, request: Request) -> Response:
        if request.method not in _ALLOW:
            return method_not_allowed(request, _ALLOW)
        return exposition(self.metrics, request)
