"""queue (with priority): a saturated backend, held and released one request at a time.

A real gateway (HCL, `Gateway`) in front of a real HTTP server (tests/stubs.py `json_stub`)
whose every request blocks until the test lets it go: the order in which requests reach the
backend is the order the queue admits them, with no timing involved. The queue lets one
request in at a time; the test fills its line, then releases the backend one request at a time.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.stdlib.common.concurrency_queue import QueueState

from ..stubs import eventually, free_port, json_stub

pytestmark = pytest.mark.anyio


class HeldBackend:
    """Records each request's `X-Name` as it arrives, then holds it until `let_go()`."""

    def __init__(self) -> None:
        self.arrivals: list[str] = []
        self._gate = threading.Semaphore(0)
        self._lock = threading.Lock()

    def route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        name = headers.get("x-name", path)
        with self._lock:
            self.arrivals.append(name)
        self._gate.acquire(timeout=60)
        return 200, {"name": name}

    def let_go(self, count: int = 1) -> None:
        self._gate.release(count)


@contextmanager
def held_backend() -> Iterator[tuple[HeldBackend, str]]:
    backend = HeldBackend()
    with json_stub(backend.route) as url:
        try:
            yield backend, url
        finally:
            backend.let_go(1000)  # nothing stays blocked past the test


def config_text(port: int, backend_url: str, queue: str, api_port: int | None = None) -> str:
    api = f'api {{ address = "127.0.0.1:{api_port}" }}\nmetrics {{ prometheus {{ }} }}' if api_port else ""
    return f"""
entrypoints "web" {{ address = "127.0.0.1:{port}" }}

routers "all" {{
  rule        = "PathPrefix(`/`)"
  service     = "backend"
  middlewares = ["priority", "queue"]
}}

services "backend" {{
  load_balancer {{ servers = [{{ url = "{backend_url}" }}] }}
}}

middlewares "priority" {{
  type  = "priority"
  rules = [{{ header = "X-Priority" }}]
}}

middlewares "queue" {{
  type = "queue"
{queue}
}}
{api}
"""


@asynccontextmanager
async def running(
    tmp_path: Path, backend_url: str, queue: str, api_port: int | None = None
) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient, Path, int]]:
    port = free_port()
    path = tmp_path / "gateway.hcl"
    path.write_text(config_text(port, backend_url, queue, api_port))
    async with (
        Gateway(str(path)) as gw,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        yield gw, client, path, port


def line_of(gw: Gateway) -> dict[str, Any]:
    state = gw.graph.middlewares["queue"].state
    assert isinstance(state, QueueState)
    return state.statistics().get("backend", {"in_flight": 0, "waiting": {}})


def waiting(gw: Gateway) -> int:
    return sum(line_of(gw)["waiting"].values())


class Client:
    """Sends named requests of a class in the background and keeps their responses."""

    def __init__(self, client: httpx.AsyncClient, tg: anyio.abc.TaskGroup) -> None:
        self.client, self.tg = client, tg
        self.responses: dict[str, httpx.Response] = {}

    def send(self, name: str, priority: str) -> None:
        async def one() -> None:
            headers = {"x-name": name, "x-priority": priority}
            self.responses[name] = await self.client.get(f"/{name}", headers=headers)

        self.tg.start_soon(one)

    def shed(self) -> set[str]:
        return {name for name, r in self.responses.items() if r.status_code == 503}


@dataclass
class Saturated:
    backend: HeldBackend
    gw: Gateway
    client: httpx.AsyncClient
    c: Client
    path: Path
    port: int


@asynccontextmanager
async def saturated(tmp_path: Path, queue: str, api_port: int | None = None) -> AsyncIterator[Saturated]:
    """A held backend, a gateway in front of it, and the queue's one slot taken by "holder"."""
    with held_backend() as (backend, url):
        async with (
            running(tmp_path, url, queue, api_port) as (gw, client, path, port),
            anyio.create_task_group() as tg,
        ):
            c = Client(client, tg)
            c.send("holder", "normal")
            await eventually(lambda: backend.arrivals == ["holder"])
            yield Saturated(backend, gw, client, c, path, port)


async def test_a_saturated_backend_serves_critical_first_and_sheds_best_effort(tmp_path: Path) -> None:
    queue = 'max_concurrent = 1\nmax_waiting = 3\ntimeout = "60s"\nretry_after = "3s"'
    api_port = free_port()
    async with saturated(tmp_path, queue, api_port) as s:  # the one slot is taken
        backend, gw, client, c = s.backend, s.gw, s.client, s.c
        # Each arrival is settled (waiting, or answered 503) before the next is sent.
        arrivals = [
            ("be1", "best_effort"),  # waits
            ("low1", "low"),  # waits
            ("crit1", "critical"),  # waits: the line is full now
            ("high1", "high"),  # sheds be1, the lowest class waiting
            ("be2", "BestEffort"),  # the line holds nothing lower: be2 itself is shed
            ("crit2", "critical"),  # sheds low1
            ("norm1", "normal"),  # only critical and high wait: norm1 is shed
        ]
        for sent, (name, priority) in enumerate(arrivals, start=1):
            c.send(name, priority)
            await eventually(lambda n=sent: waiting(gw) + len(c.shed()) == n)  # type: ignore[misc]
        assert c.shed() == {"be1", "be2", "low1", "norm1"}
        for name in c.shed():
            refused = c.responses[name]
            assert refused.json()["error"]["type"] == "overloaded"
            assert refused.headers["retry-after"] == "3"
        assert line_of(gw)["waiting"] == {
            "critical": 2, "high": 1, "normal": 0, "low": 0, "best_effort": 0,
        }  # fmt: skip
        assert line_of(gw)["in_flight"] == 1

        # Release the backend one request at a time: the queue admits critical, FIFO, then high.
        for admitted in range(2, 5):
            backend.let_go()
            await eventually(lambda n=admitted: len(backend.arrivals) == n)  # type: ignore[misc]
        assert backend.arrivals == ["holder", "crit1", "crit2", "high1"]
        backend.let_go()
        await eventually(lambda: len(c.responses) == 8)
        assert {n for n, r in c.responses.items() if r.status_code == 200} == {
            "holder", "crit1", "crit2", "high1",
        }  # fmt: skip

        scraped = (await client.get(f"http://127.0.0.1:{api_port}/metrics")).text
    shed = _samples(scraped, "a3s_gateway_queue_shed_requests")
    assert shed[("queue", "backend", "best_effort", "overloaded")] == 2
    assert shed[("queue", "backend", "low", "overloaded")] == 1
    assert shed[("queue", "backend", "normal", "overloaded")] == 1
    assert shed[("queue", "backend", "critical", "overloaded")] == 0
    depth = _samples(scraped, "a3s_gateway_queue_waiting_requests")
    assert depth[("queue", "backend", "critical")] == 0 and len(depth) == 5


def _samples(text: str, family: str) -> dict[tuple[str, ...], float]:
    found = {f.name: f for f in text_string_to_metric_families(text)}[family]
    return {
        tuple(s.labels[k] for k in ("middleware", "service", "priority", "reason") if k in s.labels): s.value
        for s in found.samples
        if not s.name.endswith("_created")
    }


async def test_a_waiter_whose_client_leaves_gives_up_its_place(tmp_path: Path) -> None:
    queue = 'max_concurrent = 1\nmax_waiting = 5\ntimeout = "60s"'
    async with saturated(tmp_path, queue) as s:
        backend, gw, c, port = s.backend, s.gw, s.c, s.port
        leaver = socket.create_connection(("127.0.0.1", port))
        leaver.sendall(b"GET /leaver HTTP/1.1\r\nHost: x\r\nX-Name: leaver\r\nX-Priority: critical\r\n\r\n")
        await eventually(lambda: waiting(gw) == 1)
        c.send("stayer", "low")
        await eventually(lambda: waiting(gw) == 2)
        leaver.close()  # the gateway notices the hang-up and takes it out of the line
        await eventually(lambda: line_of(gw)["waiting"]["critical"] == 0)
        backend.let_go()
        await eventually(lambda: len(backend.arrivals) == 2)
        assert backend.arrivals == ["holder", "stayer"]  # the critical one had gone
        backend.let_go()
        await eventually(lambda: len(c.responses) == 2)
        assert line_of(gw) == {
            "in_flight": 0,
            "waiting": dict.fromkeys(["critical", "high", "normal", "low", "best_effort"], 0),
            "shed": dict.fromkeys(["critical", "high", "normal", "low", "best_effort"], 0),
            "timeouts": dict.fromkeys(["critical", "high", "normal", "low", "best_effort"], 0),
        }


async def test_a_wait_past_the_timeout_is_a_503_with_retry_after(tmp_path: Path) -> None:
    queue = 'max_concurrent = 1\nmax_waiting = 5\ntimeout = "100ms"\nretry_after = "7s"'
    async with saturated(tmp_path, queue) as s:
        backend, gw, client, c = s.backend, s.gw, s.client, s.c
        late = await client.get("/late", headers={"x-name": "late", "x-priority": "high"})
        assert late.status_code == 503 and late.headers["retry-after"] == "7"
        assert late.json()["error"]["type"] == "queue_timeout"
        assert line_of(gw)["timeouts"]["high"] == 1 and waiting(gw) == 0
        backend.let_go()
        await eventually(lambda: "holder" in c.responses)
    assert backend.arrivals == ["holder"]


async def test_a_reload_keeps_the_line_and_a_raised_limit_admits_waiters(tmp_path: Path) -> None:
    queue = 'max_concurrent = 1\nmax_waiting = 5\ntimeout = "60s"'
    async with saturated(tmp_path, queue) as s:
        backend, gw, c, path = s.backend, s.gw, s.c, s.path
        for name, priority in (("w-low", "low"), ("w-crit", "critical"), ("w-high", "high")):
            c.send(name, priority)
        await eventually(lambda: waiting(gw) == 3)
        state = gw.graph.middlewares["queue"].state

        await gw.reload()  # unchanged: the same line, the same counts
        assert gw.graph.middlewares["queue"].state is state
        assert line_of(gw)["in_flight"] == 1 and waiting(gw) == 3

        # A reload that fails after building (a new entrypoint on a port in use) changes nothing.
        good = path.read_text()
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = f'entrypoints "busy" {{ address = "127.0.0.1:{taken.getsockname()[1]}" }}\n'
            path.write_text(good.replace("max_concurrent = 1", "max_concurrent = 3") + busy)
            with pytest.raises(OSError):
                await gw.reload()
        assert gw.graph.middlewares["queue"].state is state
        assert state.limits.max_concurrent == 1 and waiting(gw) == 3 and len(backend.arrivals) == 1

        path.write_text(good.replace("max_concurrent = 1", "max_concurrent = 2"))
        await gw.reload()  # changed: the waiters stay, and one more slot admits the first of them
        assert gw.graph.middlewares["queue"].state is state
        await eventually(lambda: len(backend.arrivals) == 2)
        assert backend.arrivals == ["holder", "w-crit"] and waiting(gw) == 2

        path.write_text(path.read_text().replace("max_concurrent = 2", "max_concurrent = 1"))
        await gw.reload()  # lowered: those in flight finish, nobody new until below the limit
        backend.let_go()  # one of the two in flight ends: 1 in flight, still not below 1
        await eventually(lambda: len(c.responses) == 1)
        assert len(backend.arrivals) == 2 and waiting(gw) == 2
        backend.let_go()
        await eventually(lambda: len(backend.arrivals) == 3)
        assert backend.arrivals[2] == "w-high"
        backend.let_go(2)
        await eventually(lambda: len(c.responses) == 4)
    assert all(r.status_code == 200 for r in c.responses.values())
    assert backend.arrivals == ["holder", "w-crit", "w-high", "w-low"]
