"""The Gateway's lifecycle on real sockets: start, serve, health, drain on shutdown, failures."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import anyio
import httpx
import psutil
import pytest

from a3s_gateway.compiler import CompileError, compile_config
from a3s_gateway.runtime.gateway import Gateway, LifecycleError, State

from .stubs import free_port

pytestmark = pytest.mark.anyio


def write_config(tmp_path: Path, port: int, *, delay: float = 0.01, settings: str = "") -> Path:
    path = tmp_path / "gw.hcl"
    path.write_text(
        f"""{settings}
entrypoints "web" {{
  address = "127.0.0.1:{port}"
}}

routers "llm" {{
  rule    = "PathPrefix(`/v1`)"
  service = "llm"
}}

services "llm" {{
  load_balancer {{
    servers = [{{ url = "demo://llm?token_delay={delay}" }}]
  }}
}}
"""
    )
    return path


def chat(stream: bool = False, tokens: int = 3) -> dict[str, Any]:
    return {
        "model": "m",
        "stream": stream,
        "max_tokens": tokens,
        "messages": [{"role": "user", "content": "hi"}],
    }


def listening(port: int) -> bool:
    """Whether a socket listens on `port` (looked up without connecting to it)."""
    return any(
        c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
        for c in psutil.net_connections("tcp")
    )


async def refused(port: int) -> bool:
    try:
        stream = await anyio.connect_tcp("127.0.0.1", port)
    except OSError:
        return True
    await stream.aclose()
    return False


async def test_start_serve_and_shutdown(tmp_path: Path) -> None:
    port = free_port()
    gateway = Gateway(str(write_config(tmp_path, port)))
    assert gateway.state() is State.CREATED
    await gateway.start()
    try:
        assert gateway.state() is State.RUNNING
        health = gateway.health()
        assert health["status"] == "ok" and health["generation"] == 1
        assert gateway.addresses()["web"] == ("127.0.0.1", port)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            response = await client.post("/v1/chat/completions", json=chat())
            assert response.status_code == 200
            assert response.json()["choices"][0]["message"]["content"].startswith("You said: hi")
            missing = await client.get("/nowhere")
            assert missing.status_code == 404
            assert missing.json()["error"]["type"] == "no_route"
        with pytest.raises(LifecycleError):
            await gateway.start()
    finally:
        await gateway.shutdown()
    assert gateway.state() is State.STOPPED
    assert gateway.health()["status"] == "stopped"
    assert await refused(port)
    await gateway.shutdown()  # idempotent
    with pytest.raises(LifecycleError):
        await gateway.reload()


async def test_a_compiled_graph_can_be_served_directly(tmp_path: Path) -> None:
    port = free_port()
    graph = compile_config([str(write_config(tmp_path, port))]).graph
    assert graph is not None
    async with Gateway(graph) as gateway, httpx.AsyncClient() as client:
        assert gateway.state() is State.RUNNING
        assert (await client.get(f"http://127.0.0.1:{port}/v1/models")).json()["object"] == "list"


async def test_operations_out_of_order(tmp_path: Path) -> None:
    gateway = Gateway(str(write_config(tmp_path, free_port())))
    with pytest.raises(LifecycleError):
        await gateway.reload()
    assert gateway.state() is State.CREATED
    await gateway.shutdown()
    assert gateway.state() is State.STOPPED
    with pytest.raises(LifecycleError):
        await gateway.start()


async def test_a_config_with_errors_fails_start(tmp_path: Path) -> None:
    path = write_config(tmp_path, free_port())
    path.write_text(path.read_text().replace("PathPrefix", "PathPrefx"))
    gateway = Gateway(str(path))
    with pytest.raises(CompileError):
        await gateway.start()
    assert gateway.state() is State.STOPPED


async def test_a_port_in_use_fails_start_and_closes_everything(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        gateway = Gateway(str(write_config(tmp_path, taken.getsockname()[1])))
        with pytest.raises(OSError):
            await gateway.start()
    assert gateway.state() is State.STOPPED
    assert gateway.store.keys() == []  # the demo backend it had started is closed again


async def test_shutdown_stops_accepting_and_drains_open_streams(tmp_path: Path) -> None:
    port = free_port()
    gateway = Gateway(str(write_config(tmp_path, port, delay=0.02)))
    async with anyio.create_task_group() as tg:
        await gateway.start(tg)  # with a task group, shutdown() may come from any task
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
            client.stream("POST", "/v1/chat/completions", json=chat(True, tokens=25)) as response,
        ):
            lines = response.aiter_lines()
            assert (await lines.__anext__()).startswith("data: ")
            tg.start_soon(gateway.shutdown)
            with anyio.fail_after(5):
                while listening(port):
                    await anyio.sleep(0.005)
            assert gateway.state() is State.STOPPING  # the stream is still draining
            rest = [line async for line in lines if line]
        assert rest[-1] == "data: [DONE]" and len(rest) == 25 + 2
        with anyio.fail_after(5):
            await gateway.wait_stopped()
    assert gateway.state() is State.STOPPED


async def test_drain_timeout_bounds_shutdown(tmp_path: Path) -> None:
    port = free_port()
    path = write_config(tmp_path, port, delay=0.05, settings="shutdown_timeout_secs = 0.3")
    gateway = Gateway(str(path))
    cut = False
    async with anyio.create_task_group() as tg:
        await gateway.start(tg)
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
            client.stream("POST", "/v1/chat/completions", json=chat(True, tokens=200)) as response,
        ):
            lines = response.aiter_lines()
            assert (await lines.__anext__()).startswith("data: ")
            tg.start_soon(gateway.shutdown)
            try:
                with anyio.fail_after(5):
                    rest = [line async for line in lines if line]
                cut = rest[-1:] != ["data: [DONE]"]
            except (httpx.HTTPError, anyio.EndOfStream):
                cut = True
    assert cut  # 200 tokens at 50 ms do not fit in a 0.3 s drain
    assert gateway.state() is State.STOPPED
