"""The discovery provider in a running gateway, against real seed servers serving
`/.well-known/a3s-service.json`: their routes become routers to the service they name; a seed
whose health check fails is removed after `unhealthy_threshold` failures; a document that is not
JSON is a diagnostic naming the seed, the last good configuration serving meanwhile."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from a3s_gateway.runtime.gateway import Gateway

from ..stubs import eventually, free_port
from .running import servers

pytestmark = pytest.mark.anyio


@dataclass
class Seed:
    """A service describing itself; `document` is served as is (bytes), `healthy` answers /health."""

    name: str
    document: bytes = b""
    healthy: bool = True
    hits: list[str] = field(default_factory=list)
    url: str = ""

    def describe(self, service: str, routes: list[dict[str, object]], weight: int = 1) -> None:
        doc = {
            "name": service,
            "version": "1.0.0",
            "routes": routes,
            "health_path": "/health",
            "weight": weight,
        }
        self.document = json.dumps(doc).encode()

    def polled(self, client: tuple[str, int]) -> None:
        """The document was asked for from `client` (the address of the asking socket)."""


@contextmanager
def seed_server(seed: Seed) -> Iterator[Seed]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/.well-known/a3s-service.json":
                seed.polled(self.client_address)
                status, body = 200, seed.document
            elif self.path == "/health":
                status, body = (200 if seed.healthy else 503), b"{}"
            else:
                seed.hits.append(self.path)
                status, body = 200, json.dumps({"seed": seed.name, "path": self.path}).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    seed.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield seed
    finally:
        server.shutdown()
        server.server_close()


CONFIG = """
entrypoints "web" {{
  address = "127.0.0.1:{port}"
}}
middlewares "strip" {{
  type     = "strip-prefix"
  prefixes = ["/auth"]
}}
providers {{
  throttle = "0.1s"
  discovery {{
    seeds               = {seeds}
    interval            = "0.2s"
    timeout             = "2s"
    unhealthy_threshold = 2
  }}
}}
"""


async def test_seeds_register_their_routes_and_leave_when_unhealthy(tmp_path: Path) -> None:
    routes = [{"rule": "PathPrefix(`/auth`)", "middlewares": ["strip"]}]
    with seed_server(Seed("one")) as one, seed_server(Seed("two")) as two:
        one.describe("auth", routes)
        two.describe("auth", routes, weight=3)
        gw_port = free_port()
        config = tmp_path / "gateway.hcl"
        config.write_text(CONFIG.format(port=gw_port, seeds=json.dumps([one.url, two.url])))
        async with (
            Gateway(str(config)) as gateway,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw_port}") as client,
        ):
            await eventually(lambda: len(servers(gateway, "auth@discovery")) == 2, timeout=20)
            assert {n.name for n in gateway.graph.ir.nodes if n.kind == "router"} == {"auth-0@discovery"}
            for _ in range(8):
                assert (await client.get("/auth/login")).status_code == 200
            assert one.hits and two.hits and set(one.hits + two.hits) == {"/login"}  # the files' strip

            # Seed two fails its health checks: removed after two in a row; requests keep working.
            two.healthy = False
            await eventually(lambda: servers(gateway, "auth@discovery") == [one.url], timeout=20)
            assert (await client.get("/auth/x")).status_code == 200

            # Seed one serves a document that is not JSON: a diagnostic naming it, the last good serves.
            providers = gateway.providers
            assert providers is not None
            one.document = b'{"name": "auth", "version": '
            await eventually(lambda: providers.status["discovery"].state == "rejected", timeout=20)
            error = providers.status["discovery"].last_error or ""
            assert f"seed {one.url}" in error and "is not JSON" in error
            assert (await client.get("/auth/y")).status_code == 200

            # Fixed, and two healthy again: both serve.
            one.describe("auth", routes)
            two.healthy = True
            await eventually(lambda: len(servers(gateway, "auth@discovery")) == 2, timeout=20)
