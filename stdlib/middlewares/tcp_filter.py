"""`tcp-filter`: a connection limit and an IP allowlist for TCP routers.

```hcl
middlewares "db-guard" {
  type            = "tcp-filter"
  max_connections = 100
  allowed_ips     = ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"]
}
```

A connection from an address outside `allowed_ips` (CIDRs or single addresses, IPv4 and IPv6;
empty: everyone) is refused, and so is one that would exceed `max_connections` open at once
through this middleware. A3S configures the same two limits on the TCP entrypoint itself
(`max_connections`, `tcp_allowed_ips`); `tcp_allowed_ips` is accepted here as another name for
`allowed_ips`.

The filter runs once the connection is routed, before the gateway connects to a backend: on an
entrypoint whose routers need no ClientHello (plaintext routers only) that is before any byte is
read; otherwise right after the peek. A refused connection is closed without a byte in reply.

This module holds the accounting (`TcpFilterState.admit` / `release`, pure and kept across
reloads so open connections stay counted, and a reload that changes the limits starts a new
count); the TCP data path (runtime/l4/connection.py) calls `admit` when a connection is routed
and `release` when it closes. The HTTP `__call__` is never used (its declaration's
`protocols = {"tcp"}` keeps it off HTTP routers). `statistics()` is the seam for the
observability issue's "refusals by tcp-filter" counter.
"""

from __future__ import annotations

import ipaddress

from ...runtime.api import Handler, Request, Response
from ...runtime.errors import Forbidden
from ..base import BuildContext, MiddlewareKind
from ..registry import register
from .schemas.tcp_filter import TcpFilterConfig

__all__ = ["TcpFilter", "TcpFilterConfig", "TcpFilterState"]


class TcpFilterState:
    """Open connections and refusals of one node. Pure: no sockets, no clock."""

    def __init__(self, config: TcpFilterConfig) -> None:
        self.max_connections = config.max_connections
        self.networks = config.networks()
        self.active = 0
        self.refused_ip = 0
        self.refused_full = 0

    def allows(self, client_ip: str) -> bool:
        if not self.networks:
            return True
        try:
            address = ipaddress.ip_address(client_ip.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address.version == net.version and address in net for net in self.networks)

    def admit(self, client_ip: str) -> bool:
        """Count a new connection in, or say it must be refused. Every True needs one `release()`."""
        if not self.allows(client_ip):
            self.refused_ip += 1
            return False
        if self.max_connections is not None and self.active >= self.max_connections:
            self.refused_full += 1
            return False
        self.active += 1
        return True

    def release(self) -> None:
        """A connection that `admit` let in has closed."""
        if self.active <= 0:
            raise RuntimeError("release() without a matching admit()")
        self.active -= 1

    def statistics(self) -> dict[str, int]:
        return {"active": self.active, "refused_ip": self.refused_ip, "refused_full": self.refused_full}


@register("middleware", "tcp-filter")
class TcpFilter(MiddlewareKind[TcpFilterConfig]):
    state: TcpFilterState

    @classmethod
    def new_state(cls, config: TcpFilterConfig, ctx: BuildContext) -> TcpFilterState:
        return TcpFilterState(config)

    async def __call__(self, request: Request, next: Handler) -> Response:
        # Only reachable if a runtime puts it on an HTTP router. Connections are counted by the TCP
        # data path, not per request, so here only the allowlist applies.
        if not self.state.allows(request.client_ip):
            raise Forbidden("client address not allowed")
        return await next(request)
