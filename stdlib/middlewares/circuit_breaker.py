"""`circuit-breaker`: stop sending requests to a failing service, answer 503 at once, recover.

```hcl
middlewares "breaker" {
  type              = "circuit-breaker"
  failure_threshold = 5      # consecutive failures that open the circuit
  cooldown_secs     = 30     # how long it stays open (a number of seconds, or "30s")
  success_threshold = 2      # successful trials in half-open that close it
  # failure_ratio = 0.5, window = "10s", min_requests = 20   # also trip on a failure ratio
  # half_open_max_requests = 2                               # trials at once (default: success_threshold)
  # failure_statuses = ["5xx"]                               # or e.g. [500, 502, 503, 504]
  # per_backend = false
}
```

Closed, open, half-open, as described (and encoded as a table) in `stdlib/common/breaker.py`.
A failure is a response whose status is in `failure_statuses` (default: every 5xx) or a gateway
error on the way to the service (connect failure, timeout, no healthy backend). A request that
ends without a verdict (the client went away) is not counted. While the circuit is open, requests
get 503 `circuit_open` with `Retry-After` at once and never reach the service.

Breakers are per service: one per service the middleware's routers send to. With
`per_backend = true` there is one per backend instead; the middleware then puts the backends
whose circuit is refusing into `request.state["avoid_backends"]` for the balancer, and learns
which backend served a request from `request.state["backend"]` (set by the service layer).

The breakers live in the node's state, so a reload that keeps this middleware's config keeps them
open or closed; `state_snapshot()` gives their states for the dashboard.
"""

from __future__ import annotations

import math
from typing import Any

from ...runtime.api import Handler, Request, Response
from ...runtime.clock import Clock
from ...runtime.errors import CircuitOpen, ClientClosed, GatewayError
from ..base import BuildContext, MiddlewareKind
from ..common.breaker import Breaker, BreakerPolicy, Input, Ticket
from ..registry import register
from .schemas.circuit_breaker import CircuitBreakerConfig

__all__ = ["BreakerSet", "CircuitBreaker", "CircuitBreakerConfig"]


class BreakerSet:
    """The breakers of one middleware node, by service (or by backend)."""

    def __init__(self, policy: BreakerPolicy, clock: Clock) -> None:
        self.policy = policy
        self.clock = clock
        self.breakers: dict[str, Breaker] = {}

    def get(self, key: str) -> Breaker:
        breaker = self.breakers.get(key)
        if breaker is None:
            breaker = self.breakers[key] = Breaker(self.policy)
        return breaker

    def state_snapshot(self) -> dict[str, dict[str, Any]]:
        """Every breaker's state, counters and retry time, for the dashboard API."""
        now = self.clock.now()
        return {key: breaker.snapshot(now) for key, breaker in sorted(self.breakers.items())}


@register("middleware", "circuit-breaker")
class CircuitBreaker(MiddlewareKind[CircuitBreakerConfig]):
    state: BreakerSet

    @classmethod
    def new_state(cls, config: CircuitBreakerConfig, ctx: BuildContext) -> BreakerSet:
        return BreakerSet(config.policy(), ctx.clock)

    def state_snapshot(self) -> dict[str, dict[str, Any]]:
        return self.state.state_snapshot()

    async def __call__(self, request: Request, next: Handler) -> Response:
        if self.config.per_backend:
            return await self._per_backend(request, next)
        service = request.route.service if request.route is not None else self.ctx.name
        breaker = self.state.get(service)
        ticket = breaker.request(self.ctx.clock.now())
        if ticket is None:
            raise _open_error(breaker, self.ctx.clock.now(), service)
        return await self._observe(request, next, lambda: (breaker, ticket))

    async def _per_backend(self, request: Request, next: Handler) -> Response:
        now = self.ctx.clock.now()
        refusing = {key for key, b in self.state.breakers.items() if not b.would_admit(now)}
        if refusing:
            avoid = request.state.get("avoid_backends") or set()
            request.state["avoid_backends"] = set(avoid) | refusing

        def served_by() -> tuple[Breaker, Ticket] | None:
            backend = request.state.get("backend")
            key = getattr(backend, "key", backend)
            if not isinstance(key, str):
                return None
            breaker = self.state.get(key)
            ticket = breaker.request(self.ctx.clock.now())
            return None if ticket is None else (breaker, ticket)

        return await self._observe(request, next, served_by)

    async def _observe(self, request: Request, next: Handler, target: Any) -> Response:
        """Call `next` and report the outcome to the breaker `target()` names."""
        try:
            response = await next(request)
        except ClientClosed:
            self._report(target, Input.CANCEL)
            raise
        except GatewayError as exc:
            # An error that is not the service's fault (413 from an inner body-limit, say) is no verdict.
            self._report(target, Input.FAILURE if self.config.is_failure(exc.status) else Input.CANCEL)
            raise
        except Exception:
            self._report(target, Input.FAILURE)
            raise
        except BaseException:  # cancelled: no verdict, but free a half-open trial slot
            self._report(target, Input.CANCEL)
            raise
        self._report(target, Input.FAILURE if self.config.is_failure(response.status) else Input.SUCCESS)
        return response

    def _report(self, target: Any, outcome: Input) -> None:
        found = target()
        if found is not None:
            breaker, ticket = found
            breaker.record(ticket, outcome, self.ctx.clock.now())


def _open_error(breaker: Breaker, now: float, service: str) -> CircuitOpen:
    retry = max(1, math.ceil(breaker.retry_after(now)))
    return CircuitOpen(f"circuit open for {service}", headers=[("Retry-After", str(retry))])
