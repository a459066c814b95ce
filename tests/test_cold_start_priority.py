"""The cold-start buffer replays waiting requests by priority class (issue 20, request priority).

A real gateway (HCL) in front of a real server (tests/stubs.py `json_stub`) scaled by the
`static` executor: the replica is ready once its /health answers 200, which the test decides,
and each request it gets is held until the test lets it go. Requests of every class wait in the
buffer while the replica is "loading"; once it is ready (one request at a time:
container_concurrency = 1) they reach it highest class first, in arrival order within a class.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.stdlib.scalers import ScalingFront

from .stubs import eventually, free_port, json_stub

pytestmark = pytest.mark.anyio


class LoadingBackend:
    """/health answers 503 until `ready`; every other request is recorded, then held."""

    def __init__(self) -> None:
        self.ready = False
        self.arrivals: list[str] = []
        self._gate = threading.Semaphore(0)

    def route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if path == "/health":
            return (200, {}) if self.ready else (503, {"status": "loading"})
        self.arrivals.append(headers.get("x-name", path))
        self._gate.acquire(timeout=60)
        return 200, {}

    def let_go(self, count: int = 1) -> None:
        self._gate.release(count)


def config(port: int, url: str) -> str:
    return f"""
entrypoints "web" {{ address = "127.0.0.1:{port}" }}

routers "all" {{
  rule        = "PathPrefix(`/`)"
  service     = "llm"
  middlewares = ["priority"]
}}

middlewares "priority" {{
  type    = "priority"
  default = "normal"
  rules   = [{{ header = "X-Priority" }}, {{ path = "/batch*", priority = "best_effort" }}]
}}

services "llm" {{
  load_balancer {{ servers = [{{ url = "{url}" }}] }}
  scaling {{
    min_replicas          = 1
    container_concurrency = 1
    buffer_timeout        = "60s"
    executor              = "static"
    tick_interval         = "50ms"
    static {{
      health_path = "/health"
      interval    = "20ms"
    }}
  }}
}}
"""


async def test_the_cold_start_buffer_replays_highest_class_first(tmp_path: Path) -> None:
    backend = LoadingBackend()
    with json_stub(backend.route) as url:
        port = free_port()
        path = tmp_path / "gw.hcl"
        path.write_text(config(port, url))
        try:
            async with (
                Gateway(str(path)) as gw,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
                anyio.create_task_group() as tg,
            ):
                front = gw.graph.services["llm"].front
                assert isinstance(front, ScalingFront) and front.scaler is not None
                buffer = front.scaler.buffer
                statuses: dict[str, int] = {}

                async def send(name: str, target: str, priority: str | None) -> None:
                    headers = {"x-name": name} | ({"x-priority": priority} if priority else {})
                    statuses[name] = (await client.get(target, headers=headers)).status_code

                sent = [
                    ("batch1", "/batch/1", None),  # best_effort, by its path
                    ("low1", "/v1/a", "low"),
                    ("norm1", "/v1/b", None),  # no rule matches: the default
                    ("crit1", "/v1/c", "critical"),
                    ("high1", "/v1/d", "High"),
                    ("crit2", "/v1/e", "CRITICAL"),
                    ("batch2", "/batch/2", None),
                ]
                for queued, (name, target, priority) in enumerate(sent, start=1):
                    tg.start_soon(send, name, target, priority)
                    await eventually(lambda n=queued: buffer.statistics().queued == n)  # type: ignore[misc]

                backend.ready = True  # the model has loaded: the buffer replays, one at a time
                await eventually(lambda: len(backend.arrivals) == 1)
                for reached in range(2, len(sent) + 1):
                    backend.let_go()
                    await eventually(lambda n=reached: len(backend.arrivals) == n)  # type: ignore[misc]
                backend.let_go()
                await eventually(lambda: len(statuses) == len(sent))
        finally:
            backend.let_go(100)
    assert backend.arrivals == ["crit1", "crit2", "high1", "norm1", "low1", "batch1", "batch2"]
    assert set(statuses.values()) == {200}
