"""The `static` executor: a fixed server list whose readiness is observed over real HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import pytest

from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.executors.static import StaticConfig, StaticExecutor
from a3s_gateway.stdlib.registry import lookup

Route = Callable[[str, str, dict[str, str], bytes], tuple[int, Any]]


@pytest.fixture
def serve() -> Iterator[Callable[[Route], str]]:
    """Start a threaded HTTP server answering with `route(method, path, headers, body)`."""
    servers: list[ThreadingHTTPServer] = []

    def start(route: Route) -> str:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, payload = route(self.command, self.path, headers, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = _any

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


async def eventually(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not cond():
            await anyio.sleep(0.01)


def test_static_is_registered_and_observes_only() -> None:
    kind = lookup("executor", "static")
    assert kind is not None and kind.impl is StaticExecutor and not StaticExecutor.creates_replicas


@pytest.mark.anyio
async def test_static_without_health_path_is_ready_at_once(anyio_backend: object) -> None:
    executor = StaticExecutor(StaticConfig(), BuildContext("s", "s"), servers=["http://a:1", "http://b:2"])
    assert executor.ready_endpoints() == ["http://a:1", "http://b:2"]
    await executor.scale(5)
    assert executor.snapshot() == {"desired": 5, "ready": ["http://a:1", "http://b:2"]}


@pytest.mark.anyio
async def test_static_observes_health(anyio_backend: object, serve: Callable[[Route], str]) -> None:
    healthy = {"ok": True}
    up = serve(lambda m, p, h, b: (200 if healthy["ok"] else 503, {}))
    down = serve(lambda m, p, h, b: (503, {}))
    cfg = StaticConfig(health_path="/health", interval="20ms")
    executor = StaticExecutor(cfg, BuildContext("s", "s"), servers=[up, down, "http://127.0.0.1:9"])
    async with anyio.create_task_group() as tg:
        tg.start_soon(executor.run)
        await eventually(lambda: executor.ready_endpoints() == [up])
        healthy["ok"] = False
        await eventually(lambda: executor.ready_endpoints() == [])
        healthy["ok"] = True
        with anyio.fail_after(5):
            assert await executor.wait_changed() == [up]
        await executor.aclose()
