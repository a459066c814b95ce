"""The `process` executor against real local processes (tests/scaling_backend.py)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from pydantic import ValidationError

from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.executors.process import ProcessConfig, ProcessExecutor
from a3s_gateway.stdlib.registry import lookup

from .stubs import eventually

pytestmark = pytest.mark.anyio

BACKEND = Path(__file__).with_name("scaling_backend.py")


def command(*extra: str) -> str:
    return f"{sys.executable} {BACKEND} --port {{port}} --name r{{replica}} " + " ".join(extra)


def config(*extra: str, **kw: object) -> ProcessConfig:
    options: dict[str, object] = {"command": command(*extra), "output": "discard", "probe_interval": "20ms"}
    options.update(kw)
    return ProcessConfig.model_validate(options)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped between kill(0) and the read
        return False


@asynccontextmanager
async def running(cfg: ProcessConfig) -> AsyncIterator[ProcessExecutor]:
    executor = ProcessExecutor(cfg, BuildContext(node_id="scaler:llm", name="llm"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(executor.run)
        try:
            yield executor
        finally:
            await executor.aclose()


def pids(executor: ProcessExecutor) -> list[int]:
    return [r["pid"] for r in executor.snapshot()["replicas"] if r["pid"]]


def test_registered_with_its_config() -> None:
    kind = lookup("executor", "process")
    assert kind is not None and kind.config is ProcessConfig and kind.impl is ProcessExecutor
    assert kind.creates_replicas and "SIGTERM" in kind.doc


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"command": ""}, "command is empty"),
        ({"command": "serve --port {prot}"}, "unknown placeholder {prot}"),
        ({"command": "serve 'unterminated"}, "cannot be split"),
        ({"command": "serve", "health_path": "health"}, "must start with"),
        ({"command": "serve", "env": {"X": "{nope}"}}, "unknown placeholder"),
        ({"command": "serve", "ready_timeout": "soon"}, "invalid duration"),
    ],
)
def test_config_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ProcessConfig.model_validate(options)


def test_json_braces_in_a_command_are_left_alone() -> None:
    cfg = ProcessConfig(command="serve --port {port} --opts '{\"a\": 1}'")
    assert cfg.stop_grace == 10.0 and cfg.ready_timeout == 120.0 and cfg.health_path == "/health"


async def test_scale_up_waits_for_readiness_then_serves(anyio_backend: object) -> None:
    async with running(config("--delay", "0.1", "--early-bind")) as executor:
        changes: list[list[str]] = []
        executor.subscribe(changes.append)
        assert executor.ready_endpoints() == []
        await executor.scale(1)
        with anyio.fail_after(10):
            ready = await executor.wait_changed()
        assert len(ready) == 1 and changes == [ready]
        async with httpx.AsyncClient(trust_env=False) as client:
            reply = (await client.get(ready[0] + "/hello")).json()
        assert reply["name"] == "r0" and reply["path"] == "/hello"
        assert executor.snapshot()["replicas"][0]["ready"] is True


async def test_scale_to_two_then_down_to_zero_stops_processes(anyio_backend: object) -> None:
    async with running(config()) as executor:
        await executor.scale(2)
        await eventually(lambda: len(executor.ready_endpoints()) == 2)
        urls = executor.ready_endpoints()
        assert len({u.rsplit(":", 1)[1] for u in urls}) == 2, "a free port each"
        before = pids(executor)
        await executor.scale(1)
        await eventually(lambda: len(pids(executor)) == 1)
        gone = [p for p in before if p not in pids(executor)]
        await eventually(lambda: not alive(gone[0]))
        assert executor.ready_endpoints() == [urls[0]], "the newest replica goes first"
        await executor.scale(0)
        await eventually(lambda: not executor.snapshot()["replicas"])
        assert executor.ready_endpoints() == []
        assert not any(alive(p) for p in before)


async def test_a_replica_that_dies_is_restarted(anyio_backend: object) -> None:
    async with running(config(restart_backoff="50ms")) as executor:
        await executor.scale(1)
        await eventually(lambda: len(executor.ready_endpoints()) == 1)
        first = pids(executor)[0]
        os.kill(first, signal.SIGKILL)
        await eventually(lambda: executor.ready_endpoints() == [])
        await eventually(lambda: len(executor.ready_endpoints()) == 1)
        replica = executor.snapshot()["replicas"][0]
        assert replica["pid"] != first and replica["restarts"] == 1


async def test_sigkill_after_stop_grace(anyio_backend: object) -> None:
    async with running(config("--ignore-sigterm", stop_grace="200ms")) as executor:
        await executor.scale(1)
        await eventually(lambda: len(executor.ready_endpoints()) == 1)
        pid = pids(executor)[0]
        start = anyio.current_time()
        await executor.scale(0)
        await eventually(lambda: not alive(pid))
        assert anyio.current_time() - start >= 0.2


async def test_not_ready_in_time_is_restarted(anyio_backend: object) -> None:
    cfg = config("--delay", "30", "--early-bind", ready_timeout="150ms", restart_backoff="20ms")
    async with running(cfg) as executor:
        await executor.scale(1)
        await eventually(lambda: any(r["restarts"] >= 1 for r in executor.snapshot()["replicas"]))
        assert executor.ready_endpoints() == []


async def test_a_loading_replica_goes_before_a_ready_one(anyio_backend: object) -> None:
    async with running(config()) as executor:
        await executor.scale(1)
        await eventually(lambda: len(executor.ready_endpoints()) == 1)
        ready = executor.ready_endpoints()
        executor.config = config("--delay", "30", "--early-bind")  # the next replica never loads
        await executor.scale(2)
        await eventually(lambda: len(pids(executor)) == 2)
        await executor.scale(1)
        await eventually(lambda: len(pids(executor)) == 1)
        assert executor.ready_endpoints() == ready


async def test_drain_before_stopping_a_ready_replica(anyio_backend: object) -> None:
    drained: list[str] = []

    async def drainer(url: str) -> None:
        drained.append(url)

    async with running(config()) as executor:
        executor.drainer = drainer
        await executor.scale(1)
        await eventually(lambda: len(executor.ready_endpoints()) == 1)
        url = executor.ready_endpoints()[0]
        await executor.scale(0)
        await eventually(lambda: not pids(executor))
        assert drained == [url]


async def test_closing_leaves_no_process_behind(anyio_backend: object) -> None:
    executor = ProcessExecutor(config("--ignore-sigterm", stop_grace="100ms"), BuildContext("s", "s"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(executor.run)
        await executor.scale(2)
        await eventually(lambda: len(executor.ready_endpoints()) == 2)
        started = pids(executor)
        tg.cancel_scope.cancel()  # the owner goes away without asking
    assert not any(alive(p) for p in started)
    assert executor.ready_endpoints() == []
