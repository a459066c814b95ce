"""`ip-allow`: let through only clients whose address is in a CIDR allowlist; 403 for the rest.

```hcl
middlewares "office-only" {
  type        = "ip-allow"
  allowed_ips = ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"]    # A3S key
  # ip_strategy { depth = 1 }                                    # or: excluded_ips = ["10.1.0.0/16"]
  # reject_status = 403
}
```

The client address is `request.client_ip`: the peer's address, or the client named in
X-Forwarded-For when the peer is one of the entrypoint's `trusted_proxies` (the runtime resolves
that before any middleware runs). That is the right choice almost always.

`ip_strategy` reads X-Forwarded-For directly instead, as Traefik's `ipStrategy` does:
`depth = N` takes the N-th address from the right (1 = the address the nearest proxy saw), and
`excluded_ips` takes the right-most address that is not one of those proxies. When `depth` is set,
`excluded_ips` is ignored. If the header is missing or shorter than `depth`, the request is refused.
Use it only behind proxies you run: a client can write any address into the left of the list,
and only the entries your own proxies appended can be believed.

IPv4 and IPv6 both work; an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, as dual-stack sockets
report IPv4 peers) matches the IPv4 entries. Entries are parsed once at compile time (a bad CIDR
is a config error at its line) and kept as networks, so a request only does the containment test.
Refusals are a 403 JSON error (`reject_status` changes the status, as Traefik's `rejectStatusCode`).
"""

from __future__ import annotations

from ...runtime.api import Handler, Request, Response
from ...runtime.errors import Forbidden
from ..base import BuildContext, MiddlewareKind
from ..common.ipnet import IPSet, xff_at_depth, xff_excluding
from ..registry import register
from .schemas.ip_allow import IpAllowConfig, IpStrategy

__all__ = ["IpAllow", "IpAllowConfig", "IpStrategy"]


@register("middleware", "ip-allow")
class IpAllow(MiddlewareKind[IpAllowConfig]):
    def __init__(self, config: IpAllowConfig, state: object, ctx: BuildContext) -> None:
        super().__init__(config, state, ctx)
        self.allowed = IPSet(config.allowed_ips)
        strategy = config.ip_strategy
        self.excluded = IPSet(strategy.excluded_ips) if strategy is not None else IPSet(())

    def client_address(self, request: Request) -> str | None:
        """The address the allowlist is checked against, per the configured strategy."""
        strategy = self.config.ip_strategy
        if strategy is None:
            return request.client_ip
        if strategy.depth > 0:
            return xff_at_depth(request.headers, strategy.depth)
        return xff_excluding(request.headers, self.excluded)

    async def __call__(self, request: Request, next: Handler) -> Response:
        address = self.client_address(request)
        if address is None or not self.allowed.contains(address):
            error = Forbidden("client address not allowed")
            if self.config.reject_status != error.status:
                error.status = self.config.reject_status
            raise error
        return await next(request)
