"""Hot reload on a real gateway: state kept or rebuilt by fingerprint, bad configs rejected, and
the acceptance criterion: 50 reloads under load drop no request and cut no stream."""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from a3s_gateway.compiler import CompileError
from a3s_gateway.runtime.gateway import Gateway, State
from a3s_gateway.runtime.state import StateStore

from .stubs import free_port

pytestmark = pytest.mark.anyio


def config(
    port: int,
    *,
    tag: str = "a",
    rate: int = 100000,
    servers: tuple[str, ...] = ("demo://a?token_delay=0.005",),
    extra: int | None = None,
    priority: int | None = None,
) -> str:
    """A gateway config; the keyword arguments are what the tests vary between reloads."""
    server_list = ", ".join(f'{{ url = "{url}" }}' for url in servers)
    text = f"""
entrypoints "web" {{
  address = "127.0.0.1:{port}"
}}

middlewares "limit" {{
  type  = "rate-limit"
  rate  = {rate}
  burst = {rate}
}}

middlewares "tag" {{
  type             = "headers"
  response_headers = {{ "x-tag" = "{tag}" }}
}}

routers "chat" {{
  rule        = "PathPrefix(`/v1`)"
  service     = "llm"
  middlewares = ["limit", "tag"]
  {f"priority = {priority}" if priority is not None else ""}
}}

services "llm" {{
  load_balancer {{
    servers = [{server_list}]
  }}
}}
"""
    if extra is not None:
        text += f"""
routers "extra{extra}" {{
  rule    = "Path(`/extra/{extra}`)"
  service = "side{extra}"
}}

services "side{extra}" {{
  load_balancer {{
    servers = [{{ url = "demo://side?token_delay=0.005" }}]
  }}
}}
"""
    return text


def chat(stream: bool = False, tokens: int = 3, text: str = "hello") -> dict[str, Any]:
    return {
        "model": "m",
        "stream": stream,
        "max_tokens": tokens,
        "messages": [{"role": "user", "content": text}],
    }


class Closed(list[str]):
    async def close(self, value: Any) -> None:
        self.append(value)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_state_store_hands_back_keeps_and_retires_by_id_and_fingerprint(anyio_backend: str) -> None:
    store, closed = StateStore(), Closed()
    txn = store.begin()
    assert txn.obtain("middleware:a", "f1", lambda: "a1", closed.close) == "a1"
    assert txn.obtain("middleware:b", "f1", lambda: "b1", closed.close) == "b1"
    assert txn.obtain("middleware:a", "f1", lambda: "again", closed.close) == "a1"  # one object per key
    assert txn.commit().keys == []

    txn = store.begin()
    assert txn.obtain("middleware:a", "f1", lambda: "a2", closed.close) == "a1"  # unchanged: handed back
    assert txn.obtain("middleware:b", "f2", lambda: "b2", closed.close) == "b2"  # changed: created
    assert txn.obtain("middleware:c", "f1", lambda: "c2", closed.close) == "c2"  # added
    retired = txn.commit()
    assert retired.keys == [("middleware:b", "f1", "")] and closed == []  # closed later, not at commit
    await retired.aclose()
    assert closed == ["b1"]

    txn = store.begin()
    txn.obtain("middleware:d", "f1", lambda: "d3", closed.close)
    await txn.abort()  # a failed build closes what it created and leaves the live set alone
    assert closed == ["b1", "d3"]
    assert store.keys() == [
        ("middleware:a", "f1", ""),
        ("middleware:b", "f2", ""),
        ("middleware:c", "f1", ""),
    ]
    await store.aclose()
    assert sorted(closed) == ["a1", "b1", "b2", "c2", "d3"]


async def test_unchanged_middleware_keeps_its_state_and_a_changed_one_is_rebuilt(tmp_path: Path) -> None:
    port, path = free_port(), tmp_path / "gw.hcl"
    path.write_text(config(port, tag="a"))
    async with (
        Gateway(str(path)) as gateway,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        first = gateway.graph
        limit, tag = first.middlewares["limit"], first.middlewares["tag"]
        service_state = gateway.store.get("service:llm", slot="service")
        assert (await client.post("/v1/chat/completions", json=chat())).headers["x-tag"] == "a"

        path.write_text(config(port, tag="b", extra=1))
        plan = await gateway.reload()
        assert "middleware:limit" in plan.unchanged
        assert "middleware:tag" in plan.changed
        assert {"router:extra1", "service:side1"} <= set(plan.added)
        second = gateway.graph
        assert second is not first and second.generation == first.generation + 1
        # Handlers are rebuilt, state is handed back.
        assert second.middlewares["limit"] is not limit
        assert second.middlewares["limit"].state is limit.state  # type: ignore[attr-defined]
        assert second.middlewares["tag"].config != tag.config  # type: ignore[attr-defined]
        assert gateway.store.get("service:llm", slot="service") is service_state
        assert (await client.post("/v1/chat/completions", json=chat())).headers["x-tag"] == "b"
        assert (await client.get("/extra/1")).status_code == 404  # demo backend: no such endpoint

        path.write_text(config(port, tag="b", rate=5000, extra=1))
        plan = await gateway.reload()
        assert plan.changed == ("middleware:limit",)
        assert gateway.graph.middlewares["limit"].state is not limit.state  # type: ignore[attr-defined]
        assert gateway.graph.middlewares["tag"].state is second.middlewares["tag"].state  # type: ignore[attr-defined]


async def test_a_config_that_fails_to_compile_keeps_the_old_graph_serving(tmp_path: Path) -> None:
    port, path = free_port(), tmp_path / "gw.hcl"
    path.write_text(config(port))
    async with (
        Gateway(str(path)) as gateway,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        before = gateway.graph
        path.write_text(config(port).replace('service     = "llm"', 'service     = "nope"'))
        with pytest.raises(CompileError) as info:
            await gateway.reload()
        assert any("nope" in d.message for d in info.value.diagnostics)
        assert gateway.state() is State.RUNNING
        assert gateway.graph is before
        response = await client.post("/v1/chat/completions", json=chat())
        assert response.status_code == 200 and response.headers["x-tag"] == "a"
        # And the next good config goes through.
        path.write_text(config(port, tag="c"))
        await gateway.reload()
        assert (await client.post("/v1/chat/completions", json=chat())).headers["x-tag"] == "c"


async def test_a_reload_collects_the_young_generations_once(tmp_path: Path) -> None:
    """A reload pauses the collector over reading, compiling and building (compiler/collector.py)
    and collects once inside the pause: the young generations, where all it made is, not the
    old one, which holds the graph serving (a full pass walked it on every reload)."""
    port, path = free_port(), tmp_path / "gw.hcl"
    path.write_text(config(port))
    passes: list[int] = []

    def record(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    async with Gateway(str(path)) as gateway:
        path.write_text(config(port, tag="b"))
        gc.callbacks.append(record)
        try:
            plan = await gateway.reload()
        finally:
            gc.callbacks.remove(record)
        assert plan.changed == ("middleware:tag",)
    assert 1 in passes and 2 not in passes, passes


async def test_state_of_a_removed_service_is_closed_only_after_its_streams_end(tmp_path: Path) -> None:
    port, path = free_port(), tmp_path / "gw.hcl"
    slow = "demo://side?token_delay=0.02"
    path.write_text(config(port, servers=(slow,)))
    async with (
        Gateway(str(path)) as gateway,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        side = gateway.store.get(slow)
        assert side is not None
        async with client.stream("POST", "/v1/chat/completions", json=chat(True, tokens=30)) as response:
            lines = response.aiter_lines()
            assert (await lines.__anext__()).startswith("data: ")
            path.write_text(config(port))  # the new graph no longer uses demo://side
            await gateway.reload()
            assert gateway.store.get(slow) is None
            rest = [line async for line in lines if line]
        # The stream ran to its end on the old generation...
        assert rest[-1] == "data: [DONE]"
        assert len(rest) == 30 + 2  # the remaining tokens, the final chunk and [DONE]
        # ...and once it ended, the retired demo backend was stopped.
        with anyio.fail_after(5):
            while not await _refused(side.port):
                await anyio.sleep(0.01)


async def _refused(port: int) -> bool:
    try:
        stream = await anyio.connect_tcp("127.0.0.1", port)
    except OSError:
        return True
    await stream.aclose()
    return False


async def test_a_changed_or_renamed_entrypoint_rebinds_its_address_and_keeps_open_streams(
    tmp_path: Path,
) -> None:
    port, path = free_port(), tmp_path / "gw.hcl"
    path.write_text(config(port, servers=("demo://a?token_delay=0.01",)))
    async with (
        Gateway(str(path)) as gateway,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        async with client.stream("POST", "/v1/chat/completions", json=chat(True, tokens=20)) as response:
            lines = response.aiter_lines()
            assert (await lines.__anext__()).startswith("data: ")
            # Same address, other socket settings: the listener is replaced.
            path.write_text(
                config(port, servers=("demo://a?token_delay=0.01",)).replace(
                    f'address = "127.0.0.1:{port}"',
                    f'address = "127.0.0.1:{port}"\n  timeouts {{ idle = "60s" }}',
                )
            )
            plan = await gateway.reload()
            assert "entrypoint:web" in plan.changed
            assert (await client.post("/v1/chat/completions", json=chat())).status_code == 200
            # Renamed, same address: the old name's socket makes way for the new one.
            path.write_text(config(port, servers=("demo://a?token_delay=0.01",)).replace('"web"', '"www"'))
            plan = await gateway.reload()
            assert plan.added == ("entrypoint:www",) and plan.removed == ("entrypoint:web",)
            assert list(gateway.addresses()) == ["www"]
            async with httpx.AsyncClient() as fresh:
                assert (
                    await fresh.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=chat())
                ).status_code == 200
            # The stream opened on the first listener ran to its end through both reloads.
            rest = [line async for line in lines if line]
        assert rest[-1] == "data: [DONE]" and len(rest) == 20 + 2


# --------------------------------------------------------------------------- acceptance


@dataclass
class Load:
    requests: int = 0
    streams: int = 0
    streams_across_reloads: int = 0
    failures: list[str] = field(default_factory=list)


async def _keepalive_requests(base: str, stop: anyio.Event, load: Load) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        while not stop.is_set():
            try:
                response = await client.post("/v1/chat/completions", json=chat(text=f"r{load.requests}"))
                body = response.json()
                if response.status_code != 200 or body.get("object") != "chat.completion":
                    load.failures.append(f"request: {response.status_code} {body}")
                load.requests += 1
            except httpx.HTTPError as exc:
                load.failures.append(f"request: {exc!r}")


async def _streams(base: str, stop: anyio.Event, load: Load, gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        while not stop.is_set():
            generation = gateway.graph.generation
            try:
                async with client.stream(
                    "POST", "/v1/chat/completions", json=chat(True, tokens=15)
                ) as response:
                    events = [line async for line in response.aiter_lines() if line]
            except httpx.HTTPError as exc:
                load.failures.append(f"stream: {exc!r}")
                continue
            done = events[-1:] == ["data: [DONE]"] and len(events) == 15 + 3
            if response.status_code != 200 or not done:
                load.failures.append(f"stream: {response.status_code} {events[-2:]}")
                continue
            chunks = [json.loads(e[6:]) for e in events[:-1]]
            if "".join(c["choices"][0]["delta"].get("content", "") for c in chunks).split()[:2] != [
                "You",
                "said:",
            ]:
                load.failures.append(f"stream: unexpected content {chunks}")
            load.streams += 1
            load.streams_across_reloads += gateway.graph.generation != generation


@pytest.mark.slow
async def test_fifty_reloads_under_load_drop_no_request_and_cut_no_stream(tmp_path: Path) -> None:
    port, path = free_port(), tmp_path / "gw.hcl"
    path.write_text(config(port, extra=999))
    load, stop = Load(), anyio.Event()
    base = f"http://127.0.0.1:{port}"
    async with Gateway(str(path)) as gateway:
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(_keepalive_requests, base, stop, load)
                tg.start_soon(_streams, base, stop, load, gateway)
            for i in range(50):
                # Routers and services change every time; /v1 stays routed throughout.
                # The backends move too: only a, only b, both (a demo backend that leaves stops
                # once the streams of the old generation have ended).
                a, b = "demo://a?token_delay=0.005", "demo://b?token_delay=0.005"
                servers = [(b,), (a, b), (a,)][i % 3]
                path.write_text(config(port, tag=str(i % 3), servers=servers, extra=i, priority=100 + i % 2))
                plan = await gateway.reload()
                assert plan.added and plan.removed
                await anyio.sleep(0.02)
            stop.set()
        assert gateway.reloads == 50
        assert gateway.graph.generation == 51
    assert load.failures == []
    assert load.requests > 50 and load.streams > 20
    assert load.streams_across_reloads > 0


async def test_a_running_gateway_keeps_no_hcl_parser_and_still_reloads(tmp_path: Path) -> None:
    """The parser's tables (and the heap their loading fragments, ~10 MiB) are dropped after
    each compile; a reload loads them again."""
    from a3s_gateway.compiler._hcl_lark import _parser

    port, path = free_port(), tmp_path / "gw.hcl"
    path.write_text(config(port))
    async with (
        Gateway(str(path)) as gateway,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        assert _parser.cache_info().currsize == 0
        for tag in ("b", "c"):
            path.write_text(config(port, tag=tag))
            await gateway.reload()
            assert _parser.cache_info().currsize == 0
            assert (await client.post("/v1/chat/completions", json=chat())).headers["x-tag"] == tag
