"""`rate-limit`: limit each client to `rate` requests per `period`, in this process's memory.

```hcl
middlewares "rate-limit" {
  type  = "rate-limit"
  rate  = 100        # requests per period (A3S: per second)
  burst = 50         # token bucket size: what may pass at once (default: rate)
  # period    = "1s"
  # algorithm = "token-bucket"   # or "fixed-window", "sliding-window"
  # key       = "ip"             # or "header:X-User", "jwt:sub"
  # max_keys  = 100000
}
```

Requests are counted per client: the client IP (the runtime has already resolved it behind the
entrypoint's trusted proxies), a request header, or a claim of a JWT checked by an earlier `jwt`
middleware. A missing header or claim counts against the client IP.

A refused request gets a 429 JSON error with `Retry-After` and the IETF `RateLimit-Limit`,
`RateLimit-Remaining`, `RateLimit-Reset` and `RateLimit-Policy` headers; admitted responses carry
the `RateLimit-*` headers too (`headers_on_success = false` turns that off).

The counters live in the node's state, so a reload that keeps this middleware's config keeps
every client's quota. Memory is bounded: a key whose quota is fully restored is forgotten, and
beyond `max_keys` the least recently seen client is evicted. Each worker process counts on its
own; use `rate-limit-redis` for one limit shared by every worker and instance.
"""

from __future__ import annotations

from ...runtime.api import Handler, Request, Response
from ..base import BuildContext, MiddlewareKind
from ..common.limiters import LimiterTable, client_key, limit_headers, too_many_requests
from ..registry import register
from .schemas.rate_limit import RateLimitConfig

__all__ = ["RateLimit", "RateLimitConfig"]


@register("middleware", "rate-limit")
class RateLimit(MiddlewareKind[RateLimitConfig]):
    state: LimiterTable

    @classmethod
    def new_state(cls, config: RateLimitConfig, ctx: BuildContext) -> LimiterTable:
        return LimiterTable(config.spec(), config.max_keys)

    async def __call__(self, request: Request, next: Handler) -> Response:
        spec = self.state.spec
        decision = self.state.hit(client_key(request, self.config.key), self.ctx.clock.now())
        if not decision.allowed:
            raise too_many_requests(decision, spec)
        response = await next(request)
        if self.config.headers_on_success:
            for name, value in limit_headers(decision, spec):
                response.headers.set(name, value)
        return response
