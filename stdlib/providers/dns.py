"""`dns`: services whose servers are DNS names, re-resolved as their TTLs run out.

    providers {
      dns {
        resolvers = ["10.0.0.2:53"]        # default: the system's (resolv.conf)
        min_ttl   = "5s"                   # re-resolve no sooner than this, whatever the TTL
        max_ttl   = "5m"                   # and at least this often
        services = {
          llm = {
            servers  = [{ url = "http://llm.internal:8000" }, { srv = "_http._tcp.gpu.internal" }]
            strategy = "least-connections"   # any load_balancer key: strategy, health_check, ...
          }
        }
      }
    }
    routers "api" {
      rule    = "PathPrefix(`/v1`)"
      service = "llm@dns"                    # the gateway waits for the first answer at start
    }

Every A and AAAA address of a URL's host becomes a server of the service (`http://10.0.0.7:8000`,
the URL's scheme, port and path kept, with the server's weight). An SRV name gives the addresses
of its lowest-priority targets, each on the record's port with the record's weight (0 counts as
1). The names are resolved again when the smallest TTL among the answers runs out, bounded by
`min_ttl` and `max_ttl`, and each change is one reload: a server that is gone from the answer is
drained (requests already sent to it finish; no new one goes there), not cut.

A name that does not resolve (NXDOMAIN, no record) or an answer of more than `max_records`
records is a diagnostic naming the service and the name, and the last good servers keep serving;
such a name is asked again after `min_ttl`, not after the other names' TTL.
When no resolver answers at all, the provider says the source is lost and retries with backoff,
keeping the last servers. The lookups are dnspython's async resolver (asyncio and trio alike,
TCP when an answer is truncated). Tested against Debian's dnsmasq, with records changed and the
server restarted mid-run (tests/providers/test_dns.py).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio

from ..registry import register
from ._dns_lookup import Lookup, LookupFailed, lookup_host, lookup_srv, make_resolver
from ._found import Found
from .base import Backoff, Fragment, ProviderKind, Updates
from .schemas.dns import DnsProviderConfig, DnsServer

__all__ = ["Dns", "DnsProviderConfig"]


@register("provider", "dns")
class Dns(ProviderKind[DnsProviderConfig]):
    async def run(self, updates: Updates) -> None:
        resolver = make_resolver(self.config.resolvers, self.config.timeout)
        backoff = Backoff(initial=min(0.5, self.config.min_ttl), maximum=min(30.0, self.config.max_ttl))
        last: Fragment | None = None
        updates_lost = False  # after a loss, the same fragment again says the source is back
        while True:
            found = Found()
            ttl = self.config.max_ttl
            try:
                for name, service in self.config.services.items():
                    servers: list[dict[str, Any]] = []
                    for index, server in enumerate(service.servers):
                        origin = f"services.{name}.servers.{index} ({server.url or server.srv})"
                        try:
                            lookup = await self._lookup(resolver, server)
                        except LookupFailed as exc:
                            if exc.unreachable:
                                raise
                            found.problem(origin, str(exc))
                            # Asked again soon: the fragment is rejected until the name is back.
                            ttl = self.config.min_ttl
                            continue
                        ttl = min(ttl, lookup.ttl)
                        servers += _servers(server, lookup)
                    balancer = {
                        k: v for k, v in service.model_dump(exclude={"servers"}).items() if v is not None
                    }
                    found.add(
                        "services",
                        name,
                        {"load_balancer": {**balancer, "servers": servers}},
                        f"services.{name}",
                    )
            except LookupFailed as exc:
                delay = backoff.next()
                self.log.warning("%s; the last servers keep serving; retry in %gs", exc, delay)
                updates.lost(str(exc), delay)
                updates_lost = True
                await anyio.sleep(delay)
                continue
            backoff.reset()
            fragment = Fragment(self.name, found.tree, found.origins, tuple(found.problems))
            if fragment != last or updates_lost:  # the same answer again is not news
                await updates.publish(fragment)
                last, updates_lost = fragment, False
            await anyio.sleep(max(self.config.min_ttl, min(ttl, self.config.max_ttl)))

    async def _lookup(self, resolver: Any, server: DnsServer) -> Lookup:
        if server.srv is not None:
            return await lookup_srv(resolver, server.srv, self.config.max_records)
        host = urlsplit(server.url or "").hostname or ""
        return await lookup_host(resolver, host, self.config.max_records)


def _servers(server: DnsServer, lookup: Lookup) -> list[dict[str, Any]]:
    if server.srv is not None:
        return [{"url": f"{server.scheme}://{t.host}:{t.port}", "weight": t.weight} for t in lookup.targets]
    parts = urlsplit(server.url or "")
    port = f":{parts.port}" if parts.port else ""
    return [
        {"url": urlunsplit(parts._replace(netloc=f"{t.host}{port}")), "weight": server.weight}
        for t in lookup.targets
    ]
