"""ping@internal: a liveness probe for load balancers and orchestrators.

It answers from the event loop that serves traffic, so a 200 means the gateway is accepting
and routing requests. GET and HEAD, like Traefik's ping; any other method gets 405.
"""

from __future__ import annotations

from ..api import Request, Response
from .responses import method_not_allowed

_ALLOW = ("GET", "HEAD")


async def ping(request: Request) -> Response:
    if request.method not in _ALLOW:
        return method_not_allowed(request, _ALLOW)
    return Response.json(200, {"status": "ok"})
