"""The `static` executor: a fixed server list whose readiness is observed over real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import anyio
import pytest

from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.executors.static import StaticConfig, StaticExecutor
from a3s_gateway.stdlib.registry import lookup

from .stubs import Route, eventually, json_stub


@pytest.fixture
def serve() -> Iterator[Callable[[Route], str]]:
    """JSON stub servers answering with `route(method, path, headers, body)`, closed after the test."""
    with ExitStack() as stack:
        yield lambda route: stack.enter_context(json_stub(route))


def test_static_is_registered_and_observes_only() -> None:
    kind = lookup("executor", "static")
    assert kind is not None and kind.impl is StaticExecutor and not kind.creates_replicas


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
