"""Requests a middleware answered itself: a rate limit's 429, an auth middleware's 401 or 403,
an ip-allow's 403, an open circuit's 503 ...

When metrics are on, the graph binds each middleware of a router's chain through
`counted(...)` instead of a plain call: the `next` it hands the middleware marks the request as
passed on (in its scratch state, under a key made once per middleware), so an error response,
or a `GatewayError` raised, from a middleware that did not pass the request on is that
middleware's denial. Counted by middleware name and type, and status: never by client or key.
No kind has to report anything, and with metrics off the chain is bound as before.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from ..api import Handler, Middleware, Request, Response
from ..errors import GatewayError
from .metric_names import MIDDLEWARE_DENIED
from .metrics import GatewayMetrics

__all__ = ["Denials", "counted"]


class Denials:
    """The denial counter children of one middleware, by status."""

    __slots__ = ("_children", "_counter", "key", "name", "type")

    def __init__(self, metrics: GatewayMetrics, name: str, type_name: str) -> None:
        self._counter = metrics.metric(MIDDLEWARE_DENIED)
        self.name, self.type = name, type_name
        self.key = f"metrics.passed:{name}"
        self._children: dict[int, Any] = {}

    def count(self, status: int) -> None:
        child = self._children.get(status)
        if child is None:
            child = self._children[status] = self._counter.labels(self.name, self.type, str(status))
        child.inc()


def counted(middleware: Middleware, next_: Handler, denials: Denials) -> Handler:
    """`middleware` bound to `next_`, counting the requests it answers itself with an error."""
    key = denials.key

    def passed(request: Request) -> Awaitable[Response]:
        request.state[key] = True
        return next_(request)

    async def call(request: Request) -> Response:
        try:
            response = await middleware(request, passed)
        except GatewayError as exc:
            if not request.state.pop(key, False):
                denials.count(exc.status)
            raise
        if not request.state.pop(key, False) and response.status >= 400:
            denials.count(response.status)
        return response

    return call
