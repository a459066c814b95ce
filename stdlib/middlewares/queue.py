"""`queue`: bounded concurrency per service, with a waiting line ordered by priority class.

```hcl
middlewares "queue" {
  type           = "queue"
  max_concurrent = 8       # requests in flight at once, per service
  max_waiting    = 100     # requests waiting for a slot, per service
  timeout        = "30s"   # longest wait for a slot: then 503 queue_timeout
  retry_after    = "2s"    # the Retry-After of a 503 from this middleware
}
```

Each service the middleware's routers send to gets `max_concurrent` slots. A request takes one
while one is free and nobody waits, and holds it until its response body is over (ended,
failed, or cut by the client). Otherwise it waits in line: the oldest request of the highest
class goes next, the class being what a `priority` middleware placed before this one decided
(normal when none did). A waiting request whose client goes away leaves the line; one that
waits `timeout` gets 503 `queue_timeout`.

**What counts as in flight.** A request from the moment it takes a slot until its response is
over. An upgraded request (a WebSocket, over HTTP/1.1 or as an HTTP/2 extended CONNECT, RFC
8441) is in flight until its tunnel ends, not when the 101 goes out: a clean close, either side
dropping its connection, an error or limit that closes it, an HTTP/2 stream reset, or the
gateway stopping. So `max_concurrent = 2` means at most two WebSocket sessions at once, as
Traefik's `inFlightReq` and Envoy's `max_requests` count them, and the next handshake waits (or
is shed) until one of them ends.

**Shedding.** When `max_waiting` requests already wait, one is refused with 503 `overloaded`
and `Retry-After`: the newest waiter of the lowest class waiting, when that class is lower than
the newcomer's (best_effort first, then low, normal, high), else the newcomer. `max_waiting = 0`
queues nothing: a request finding every slot taken is shed at once.

**Reloads.** The slots and the line are live state: a reload keeps them, requests in flight and
waiting included, even when it changes this middleware's numbers. A new `max_concurrent`
applies at the reload's commit: a raised one admits waiters at once, a lowered one lets the
requests in flight finish and admits nobody until the count is below it; a lowered
`max_waiting` sheds nobody already waiting. Each worker process (`--workers`) has its own.

**Metrics.** `a3s_gateway_queue_waiting_requests` (per middleware, service and class),
`a3s_gateway_queue_in_flight_requests` and `a3s_gateway_queue_shed_requests_total` (per
class, by reason: `overloaded`, `timeout`), read when scraped from `queue_statistics()`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import anyio

from ...runtime.api import Handler, Request, Response
from ...runtime.errors import Overloaded, QueueTimeout
from ..base import BuildContext, MiddlewareKind
from ..common.body_end import when_body_ends
from ..common.concurrency_queue import Limits, Line, QueueState, Shed, Waiter
from ..common.priority import Priority, priority_of
from ..registry import register
from .schemas.queue import QueueConfig

__all__ = ["Queue", "QueueConfig"]


def _limits(config: QueueConfig) -> Limits:
    return Limits(config.max_concurrent, config.max_waiting)


@register("middleware", "queue")
class Queue(MiddlewareKind[QueueConfig]):
    state: QueueState
    # Waiters and requests in flight outlive a change of the numbers (module docstring).
    keep_state_across_changes: ClassVar[bool] = True

    @classmethod
    def new_state(cls, config: QueueConfig, ctx: BuildContext) -> QueueState:
        return QueueState(_limits(config))

    @classmethod
    def reconfigure(cls, state: QueueState, config: QueueConfig) -> None:
        state.reconfigure(_limits(config))

    def queue_statistics(self) -> dict[str, dict[str, Any]]:
        return self.state.statistics()

    async def __call__(self, request: Request, next: Handler) -> Response:
        service = request.route.service if request.route is not None else self.ctx.name
        line = self.state.lines.get(service) or self.state.line(service)
        priority = priority_of(request.state)
        try:
            waiter = line.enter(priority)
        except Shed:
            raise self._overloaded(service, priority) from None
        if waiter is not None:
            await self._wait(line, waiter, service)
        try:
            response = await next(request)
        except BaseException:
            line.release()
            raise
        # A 101's (empty) body is closed by the connection when the tunnel ends (runtime/api.py
        # `Upgraded`), so an upgraded request keeps its slot for the whole session.
        response.body = when_body_ends(response.body, line.release)
        return response

    async def _wait(self, line: Line, waiter: Waiter, service: str) -> None:
        try:
            with anyio.move_on_after(self.config.timeout):
                await waiter.event.wait()
        except BaseException:  # the client went away (or the gateway stops): leave the line
            line.leave(waiter)
            raise
        if waiter.granted:
            return
        if waiter.shed:
            raise self._overloaded(service, waiter.priority)
        line.leave(waiter, timed_out=True)
        raise QueueTimeout(
            f"no slot of {service!r} came free within {self.config.timeout:g}s", headers=self._retry()
        )

    def _overloaded(self, service: str, priority: Priority) -> Overloaded:
        return Overloaded(f"{service!r} is overloaded: {priority.label} request shed", headers=self._retry())

    def _retry(self) -> list[tuple[str, str]]:
        return [("retry-after", str(max(1, math.ceil(self.config.retry_after))))]
