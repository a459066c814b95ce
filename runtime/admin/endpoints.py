"""api@internal: the admin JSON API's endpoint table.

    GET  /api/gateway/health     gateway state and each backend's health
    GET  /api/gateway/config     the active configuration, secrets redacted
    GET  /api/gateway/routes     routers: rule, priority, entrypoints, middlewares, service
    GET  /api/gateway/services   services and their backends' health
    GET  /api/gateway/backends   every backend: health, open connections, in-flight requests
    GET  /api/gateway/version    the gateway and Python versions
    GET  /api/gateway/metrics    the Prometheus text (404 when metrics are not configured)
    GET  /api/gateway/graph      the IR as JSON, or DOT with ?format=dot
    GET  /api/gateway/scalers    each scaler's replicas, autoscaler and buffer
    GET  /api/gateway/rollouts   each rollout's phase, percentage and step
    GET  /api/gateway/live       the live feed: SSE, or a WebSocket on upgrade (live.py)
    POST /api/gateway/reload     re-read the configuration, as SIGHUP does
    GET/POST /api/gateway/keys, DELETE /api/gateway/keys/{name}   llm-keys' virtual keys

Each GET endpoint answers HEAD too. An unknown path is a 404 and a known path with another
method a 405 with `Allow`, both JSON; an endpoint that fails answers 500 JSON and logs the
exception: never a traceback to a client.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from ..api import Request, Response
from . import config, inventory, keys, live, reload, scaling
from .host import AdminHost
from .prometheus import exposition
from .responses import error, json_response, method_not_allowed, not_found

if TYPE_CHECKING:
    from ..graph import LiveGraph

_log = logging.getLogger("a3s_gateway.admin")
PREFIX = "/api/gateway/"

View = Callable[["LiveGraph", AdminHost | None, Request], Awaitable[Response]]


def _json(read: Callable[[LiveGraph, AdminHost | None], Any]) -> View:
    async def view(graph: LiveGraph, host: AdminHost | None, _request: Request) -> Response:
        return json_response(200, read(graph, host))

    return view


def _get(view: View) -> Mapping[str, View]:
    # RFC 9110 §9.3.2: HEAD is GET without the body (the connection sends no body for HEAD).
    return {"GET": view, "HEAD": view}


async def _graph(graph: LiveGraph, _host: AdminHost | None, request: Request) -> Response:
    fmt = parse_qs(request.query).get("format", ["json"])[-1]
    if fmt == "dot":
        return Response.text(200, config.graph_dot(graph), [("content-type", "text/vnd.graphviz")])
    if fmt != "json":
        return error(400, "bad_request", f"format must be json or dot, not {fmt!r}")
    return json_response(200, config.graph_json(graph))


async def _metrics(graph: LiveGraph, _host: AdminHost | None, request: Request) -> Response:
    return exposition(graph.metrics, request)


ENDPOINTS: Mapping[str, Mapping[str, View]] = {
    "health": _get(_json(inventory.health)),
    "config": _get(_json(config.active_config)),
    "routes": _get(_json(inventory.routes)),
    "services": _get(_json(inventory.services)),
    "backends": _get(_json(inventory.backends)),
    "version": _get(_json(inventory.version)),
    "metrics": _get(_metrics),
    "graph": _get(_graph),
    "scalers": _get(_json(scaling.scalers)),
    "rollouts": _get(_json(scaling.rollouts)),
    "live": {"GET": live.live},
    "reload": {"POST": reload.reload},
    "keys": {**_get(keys.keys), "POST": keys.keys},
}
# Endpoints whose path goes on with one segment (`keys/{name}`): that segment is the view's last argument.
ITEM_ENDPOINTS: Mapping[str, Mapping[str, Callable[..., Awaitable[Response]]]] = {
    "keys": {"DELETE": keys.key},
}


class ApiService:
    """The handler of `api@internal` for one graph generation."""

    def __init__(self, graph: LiveGraph, host: AdminHost | None) -> None:
        self.graph = graph
        self.host = host

    async def __call__(self, request: Request) -> Response:
        path = request.path
        sub = path[len(PREFIX) :].rstrip("/") if path.startswith(PREFIX) else None
        methods = ENDPOINTS.get(sub) if sub is not None else None
        if methods is None and sub is not None and "/" in sub:
            collection, _, item = sub.partition("/")
            items = ITEM_ENDPOINTS.get(collection)
            if items is not None and item and "/" not in item:
                methods = {m: functools.partial(v, item=item) for m, v in items.items()}
        if methods is None:
            return not_found(request)
        view = methods.get(request.method)
        if view is None:
            return method_not_allowed(request, methods)
        try:
            return await view(self.graph, self.host, request)
        except Exception:
            _log.exception("admin endpoint %s failed", path)
            return error(500, "internal_error", f"{path} failed; the gateway log has the details")
