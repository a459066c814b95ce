"""The `http` executor (alias `box`) against a small real HTTP service."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import anyio
import pytest
from pydantic import ValidationError

from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.executors.http import HttpExecutor, HttpExecutorConfig, parse_endpoints
from a3s_gateway.stdlib.registry import lookup

from .stubs import Route, eventually, json_stub


@pytest.fixture
def serve() -> Iterator[Callable[[Route], str]]:
    """JSON stub servers answering with `route(method, path, headers, body)`, closed after the test."""
    with ExitStack() as stack:
        yield lambda route: stack.enter_context(json_stub(route))


class Orchestrator:
    """A webhook orchestrator: remembers the asked replica count, reports that many endpoints."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, str], bytes]] = []
        self.replicas = 0
        self.fail_posts = 0

    def __call__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        self.calls.append((method, path, headers, body))
        if headers.get("authorization") != "Bearer s3cret":
            return 401, {"error": "unauthorized"}
        if method == "POST" and path == "/scale":
            if self.fail_posts:
                self.fail_posts -= 1
                return 500, {"error": "try again"}
            self.replicas = json.loads(body)["replicas"]
            return 202, {}
        if method == "GET" and path == "/endpoints":
            items = [{"url": f"http://10.0.0.{i}:8000", "ready": True} for i in range(self.replicas)]
            return 200, {"endpoints": [*items, {"url": "http://10.0.0.99:8000", "ready": False}]}
        return 404, {}


def test_box_is_an_alias_and_its_keys_are_required() -> None:
    box, http = lookup("executor", "box"), lookup("executor", "http")
    assert box is not None and box is http and box.impl is HttpExecutor
    with pytest.raises(ValidationError) as info:
        HttpExecutorConfig.model_validate({})  # `executor = "box"` with no block
    missing = {e["loc"][0] for e in info.value.errors() if e["type"] == "missing"}
    assert missing == {"scale_url", "endpoints_url"}
    with pytest.raises(ValidationError, match="http:// or https://"):
        HttpExecutorConfig(scale_url="ftp://x", endpoints_url="http://y")


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (["http://a", "http://b"], ["http://a", "http://b"]),
        ({"endpoints": ["http://a"]}, ["http://a"]),
        (
            {"endpoints": [{"url": "http://a"}, {"url": "http://b", "ready": False}, {"nope": 1}]},
            ["http://a"],
        ),
        ({}, []),
    ],
)
def test_parse_endpoints(payload: Any, expected: list[str]) -> None:
    assert parse_endpoints(payload) == expected


def test_parse_endpoints_rejects_other_shapes() -> None:
    with pytest.raises(ValueError):
        parse_endpoints({"endpoints": "http://a"})


@pytest.mark.anyio
async def test_webhook_scale_and_endpoints(anyio_backend: object, serve: Callable[[Route], str]) -> None:
    orch = Orchestrator()
    orch.fail_posts = 1  # the first POST fails and is retried
    base = serve(orch)
    cfg = HttpExecutorConfig(
        scale_url=f"{base}/scale", endpoints_url=f"{base}/endpoints", auth_header_env="ORCH_TOKEN",
        poll_interval="50ms", fast_poll_interval="10ms",
    )  # fmt: skip
    ctx = BuildContext(node_id="scaler:llm", name="llm", env={"ORCH_TOKEN": "Bearer s3cret"})
    executor = HttpExecutor(cfg, ctx)
    async with anyio.create_task_group() as tg:
        tg.start_soon(executor.run)
        await executor.scale(2)
        await eventually(lambda: len(executor.ready_endpoints()) == 2)
        assert executor.ready_endpoints() == ["http://10.0.0.0:8000", "http://10.0.0.1:8000"]
        posts = [c for c in orch.calls if c[0] == "POST"]
        assert json.loads(posts[-1][3]) == {"service": "llm", "replicas": 2}
        assert executor.errors >= 1 and len(posts) == 2
        await executor.scale(0)
        await eventually(lambda: executor.ready_endpoints() == [])
        await executor.aclose()
    assert all(c[2]["authorization"] == "Bearer s3cret" for c in orch.calls)


@pytest.mark.anyio
async def test_missing_auth_variable_is_an_error(anyio_backend: object) -> None:
    cfg = HttpExecutorConfig(
        scale_url="http://127.0.0.1:9/s",
        endpoints_url="http://127.0.0.1:9/e",
        auth_header_env="A3S_NO_SUCH_VAR_X",
    )
    with pytest.raises(RuntimeError, match="A3S_NO_SUCH_VAR_X"):
        await HttpExecutor(cfg, BuildContext("s", "s")).run()
