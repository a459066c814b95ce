"""`retry`: send a failed request again, with exponential backoff and full jitter.

```hcl
middlewares "retry" {
  type              = "retry"
  max_retries       = 3          # attempts = max_retries + 1
  retry_interval_ms = 100        # first backoff; doubles each retry, capped at max_interval
  # max_interval      = "2s"
  # retry_on_statuses = [502, 503, 504]
  # max_replay_body   = "64KiB"
  # idempotent_only   = false
}
```

What is retried: a failure to connect to the upstream, refused or timed out (nothing was
sent, so any request may go again), and a response or gateway error whose status is in
`retry_on_statuses`. With `idempotent_only = true`, the status retries are limited to
idempotent methods (RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE); connect failures
are still retried.

When it is safe: the request must be replayable. A request without a body always is; a body is
kept in memory while it streams to the first attempt (never delaying it), and as long as it
stayed under `max_replay_body` it is sent again; a larger body is never retried.

Never after the client saw a byte: the decision is taken on the response head, before the
response is returned. A response that is returned (a stream that started) is never retried;
a retried response is closed unread. Backoff before retry n (from 0) is a uniform random delay in
`[0, min(max_interval, retry_interval_ms * 2**n)]` ("full jitter"), so retrying clients spread
out instead of hitting a recovering backend in step.
"""

from __future__ import annotations

import random

import anyio

from ...runtime.api import Handler, Request, Response
from ...runtime.errors import CONNECT_FAILURES, GatewayError
from ..base import MiddlewareKind
from ..common.replay import ReplayableBody
from ..registry import register
from .schemas.retry import RetryConfig

__all__ = ["IDEMPOTENT_METHODS", "Retry", "RetryConfig", "backoff_delay"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


def backoff_delay(config: RetryConfig, retry: int, rng: random.Random) -> float:
    """Seconds to wait before retry number `retry` (0-based): full jitter under a doubling cap."""
    cap = min(config.max_interval, config.retry_interval_ms / 1000 * 2.0 ** min(retry, 62))
    return rng.uniform(0.0, cap)


@register("middleware", "retry")
class Retry(MiddlewareKind[RetryConfig]):
    _rng = random.Random()

    async def __call__(self, request: Request, next: Handler) -> Response:
        body = ReplayableBody(request.body, self.config.max_replay_body) if request.has_body else None
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            if body is not None:
                request.body = body.stream()
            request.state["retry_attempt"] = attempt
            last = attempt == attempts - 1
            try:
                response = await next(request)
            except GatewayError as exc:
                connect = isinstance(exc, CONNECT_FAILURES)
                if last or not self._may_retry(request, body, exc.status, connect=connect):
                    raise
            else:
                if last or not self._may_retry(request, body, response.status, connect=False):
                    return response
                # Retried on its head: no byte of it has gone anywhere.
                await response.aclose()
            await anyio.sleep(backoff_delay(self.config, attempt, self._rng))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _may_retry(
        self, request: Request, body: ReplayableBody | None, status: int, *, connect: bool
    ) -> bool:
        if body is not None and not body.replayable:
            return False
        if connect:
            return True
        if status not in self.config.retry_on_statuses:
            return False
        return not self.config.idempotent_only or request.method.upper() in IDEMPOTENT_METHODS
