"""Wildcard hosts and case-sensitive methods on a running gateway, and `route` agreeing with it.

A real gateway (from HCL) in front of a real backend: each router adds an `X-Router` request
header, so the backend tells which router took a request. For every request the router that
`run` chose must be the one `a3s-gateway route` names (compiler/route.py), with the same
compiled matchers: Traefik v3.7's `*.` and `*` hosts, and `Method` compared as sent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from a3s_gateway.compiler import compile_or_raise
from a3s_gateway.compiler.route import HttpProbe, route_http
from a3s_gateway.runtime.gateway import Gateway

from .backends import Backend, RawClient, backend
from .stubs import free_port

pytestmark = pytest.mark.anyio

ROUTERS = {
    "wild": ("Host(`*.example.com`) /* v3.7 wildcard */", None),
    "apex": ("Host(`example.com.`)", None),
    "get": ("Method(`get`) && PathPrefix(`/json`) && Host(`m.test`)", 5000),
    "any": ("Host(`*`)", 1),
}
REQUESTS = [
    ("GET", "a.example.com"),
    ("GET", "A.EXAMPLE.com.:8080"),
    ("GET", "a.b.example.com"),  # one label only: falls to Host(`*`)
    ("GET", "example.com"),  # the apex is not a subdomain
    ("GET", "m.test"),  # Method(`get`) is upper-cased: GET
    ("get", "m.test"),  # ...and a request sent as `get` matches no Method rule
    ("GET", "[::1]:80"),
]


def config(port: int, upstream: str) -> str:
    blocks = [f'entrypoints "web" {{ address = "127.0.0.1:{port}" }}']
    for name, (rule, priority) in ROUTERS.items():
        extra = f"\n  priority = {priority}" if priority else ""
        blocks.append(
            f'routers "{name}" {{\n  rule = "{rule}"\n  service = "api"\n  middlewares = ["{name}"]{extra}\n}}'
        )
        blocks.append(
            f'middlewares "{name}" {{\n  type = "headers"\n  request_headers = {{ "X-Router" = "{name}" }}\n}}'
        )
    blocks.append(f'services "api" {{\n  load_balancer {{ servers = [{{ url = "{upstream}" }}] }}\n}}')
    return "\n".join(blocks) + "\n"


async def served_by(port: int, server: Backend, method: str, host: str) -> str | None:
    async with RawClient.connect(port) as client:
        await client.send(f"{method} /json HTTP/1.1\r\nhost: {host}\r\n\r\n".encode())
        reply = await client.read_response(method)
    if reply.status == 404:
        return None
    assert reply.status == 200, (method, host, reply.status)
    return server.seen[-1].header("x-router")


async def test_running_gateway_and_route_agree_on_wildcards(tmp_path: Path) -> None:
    port = free_port()
    async with backend() as server:
        path = tmp_path / "gw.hcl"
        path.write_text(config(port, server.url))
        graph = compile_or_raise([str(path)])
        async with Gateway(str(path)):
            for method, host in REQUESTS:
                ran = await served_by(port, server, method, host)
                probe = HttpProbe.from_url(method, f"http://{host}/json", [], "127.0.0.1")
                routed = route_http(graph, probe)
                assert ran == (routed.name if routed else None), (method, host)
                assert ran is not None
    expected = ["wild", "wild", "any", "apex", "get", "any", "any"]
    assert [s.header("x-router") for s in server.seen] == expected
