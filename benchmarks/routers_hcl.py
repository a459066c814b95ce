"""A configuration with N routers shaped like a provider-fed Traefik fleet (benchmarks/routeindex.py).

    .venv/bin/python benchmarks/routers_hcl.py 10000 > /tmp/routers.hcl

Routers come in four shapes, in turn: `Host && PathPrefix`, `Host` alone, `PathPrefix` alone and
`Host && Path`, over about 3N/8 host names (a few routers per host) and a handful of path
prefixes, and every hundred routers share a service, as a Kubernetes or Docker provider
produces them.
"""

from __future__ import annotations

import sys

from a3s_gateway.compiler.rules import effective_priority
from a3s_gateway.runtime.api import Request, RouteInfo
from a3s_gateway.runtime.router import RouteMatch, RouterTable, compile_rule

__all__ = ["request_for", "router_rule", "router_table", "routers_hcl"]


def _host(i: int) -> str:
    return f"svc{i // 8}.team{i % 3}.example.com"


def router_rule(i: int) -> str:
    shape = i % 4
    if shape == 0:
        return f"Host(`{_host(i)}`) && PathPrefix(`/api/v{i % 3}`)"
    if shape == 1:
        return f"Host(`{_host(i)}`)"
    if shape == 2:
        return f"PathPrefix(`/r{i}/`)"
    return f"Host(`{_host(i)}`) && Path(`/health{i % 5}`)"


def request_for(i: int) -> tuple[str, str]:
    """(host, path) of a request that router i takes (and no router tried before it, when it is
    the last in priority order)."""
    shape = i % 4
    path = (f"/api/v{i % 3}/x", "/", f"/r{i}/x", f"/health{i % 5}")[shape]
    return (_host(i) if shape != 2 else "nowhere.example.org"), path


async def _not_called(request: Request) -> object:
    raise AssertionError("a router table lookup never calls the handler")


def router_table(n: int) -> RouterTable:
    """The router table of the fleet's entrypoint, as a running gateway builds it."""
    routes = []
    for i in range(n):
        text = router_rule(i)
        info = RouteInfo("web", f"r{i}", f"s{i // 100}")
        routes.append((compile_rule(text), RouteMatch(info, _not_called, effective_priority(text, None))))
    return RouterTable("web", routes)


def routers_hcl(n: int, backend: str = "http://127.0.0.1:9") -> str:
    out = ['entrypoints "web" {\n  address = "127.0.0.1:0"\n}\n']
    for s in range((n + 99) // 100):
        out.append(
            f'services "s{s}" {{\n  load_balancer {{\n    servers = [{{ url = "{backend}" }}]\n  }}\n}}\n'
        )
    for i in range(n):
        rule = router_rule(i)
        out.append(f'routers "r{i}" {{\n  rule    = "{rule}"\n  service = "s{i // 100}"\n}}\n')
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(routers_hcl(int(sys.argv[1])))
