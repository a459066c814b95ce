"""Acceptance tests of issue 7 on a real gateway with real backend processes.

* 200 concurrent requests (some SSE) against a `process` service at zero replicas whose backend
  takes 2 s to become ready: all succeed, in order of arrival per client, no 5xx, one scale-up.
* The same with `buffer_timeout = 1s` and a slower backend: all get 503 with Retry-After,
  nothing hangs, and the loading replica is not killed.
* `buffer_keepalive`: a waiting SSE client gets comment lines, then the stream.
* A rollout to a healthy v2 reaches 100 %; to a v2 answering 5 % 500s it rolls back within one
  step, and clients saw no more errors than that step let through.

Backends are tests/scaling_backend.py processes; time is kept short with small delays and steps.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import h11
import httpx
import pytest

from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.stdlib.scalers import Phase, ScalingFront

from .stubs import eventually, free_port, free_ports

pytestmark = pytest.mark.anyio

BACKEND = Path(__file__).with_name("scaling_backend.py")


def scaled_config(
    port: int,
    *,
    delay: float,
    timeout: str,
    keepalive: str | None = None,
    cc: int = 1,
    revisions: str = "",
    buffered: bool = True,
) -> str:
    """One scaled service `llm` of the process executor; `revisions` is added to the service body."""
    command = backend_command(delay) + (" --name v1" if revisions else "")
    return f"""
entrypoints "web" {{ address = "127.0.0.1:{port}" }}

routers "all" {{
  rule    = "PathPrefix(`/`)"
  service = "llm"
}}

services "llm" {{
  scaling {{
    min_replicas          = 0
    max_replicas          = 1
    container_concurrency = {cc}
    buffer_timeout        = "{timeout}"
    buffer_max_requests   = 500
    buffer_enabled        = {str(buffered).lower()}
    {f'buffer_keepalive = "{keepalive}"' if keepalive else ""}
    stable_window         = "6s"
    executor              = "process"
    {process_block(command)}
  }}
{revisions}
}}
"""


def process_block(command: str) -> str:
    """The `process` executor block of a scaling_backend.py replica: probed every 20 ms, its
    output discarded."""
    return f"""process {{
      command        = "{command}"
      health_path    = "/health"
      ready_timeout  = "30s"
      stop_grace     = "2s"
      probe_interval = "20ms"
      output         = "discard"
    }}"""


def backend_command(delay: float) -> str:
    return f"{sys.executable} {BACKEND} --port {{port}} --delay {delay} --events 3 --event-gap 0.01"


def front_of(gateway: Gateway, service: str = "llm") -> ScalingFront:
    front = gateway.graph.services[service].front
    assert isinstance(front, ScalingFront)
    return front


@asynccontextmanager
async def gateway_for(tmp_path: Path, text: str) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    path = tmp_path / "gw.hcl"
    path.write_text(text)
    port = int(text.split('address = "127.0.0.1:', 1)[1].split('"', 1)[0])
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with (
        Gateway(str(path)) as gateway,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30, trust_env=False
        ) as client,
    ):
        yield gateway, client


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


async def fetch(port: int, target: str, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    """One GET on its own connection, read to the end with h11 (a light client for 200 at once)."""
    conn = h11.Connection(h11.CLIENT)
    stream = await anyio.connect_tcp("127.0.0.1", port)
    async with stream:
        request = h11.Request(method="GET", target=target, headers=[("host", "gw"), *headers])
        await stream.send(conn.send(request) + conn.send(h11.EndOfMessage()))
        status, fields, body = 0, {}, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive())
            elif isinstance(event, h11.Response):
                status = event.status_code
                fields = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return Reply(status, fields, body)


async def test_cold_start_200_concurrent_requests_all_succeed_in_order(
    anyio_backend: object, tmp_path: Path
) -> None:
    port = free_port()
    async with gateway_for(tmp_path, scaled_config(port, delay=2.0, timeout="20s")) as (gateway, _):
        front = front_of(gateway)
        assert front.scaler is not None
        buffer = front.scaler.buffer
        feed = gateway.live.subscribe(frozenset({"scale", "replicas"}))  # the live feed's view
        clients, per_client = 20, 10
        results: dict[tuple[int, int], tuple[int, int]] = {}  # (client, k) -> (status, backend's n)
        sse_events: list[int] = []

        async def one(c: int, k: int) -> None:
            if (c + k) % 5 == 0:  # every fifth request streams
                r = await fetch(port, f"/sse?c={c}&k={k}", (("accept", "text/event-stream"),))
                lines = r.body.decode().splitlines()
                events = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
                sse_events.append(len(events))
                results[(c, k)] = (r.status, events[0]["n"] if events else -1)
            else:
                r = await fetch(port, f"/v1/x?c={c}&k={k}")
                results[(c, k)] = (r.status, r.json()["n"])

        start = anyio.current_time()
        async with anyio.create_task_group() as tg:
            # Round k of every client is sent once round k-1 is queued: each client's requests
            # arrive in a known order, and all 200 are in flight together.
            for k in range(per_client):
                for c in range(clients):
                    tg.start_soon(one, c, k)
                await eventually(lambda k=k: buffer.statistics().queued == clients * (k + 1))
            assert front.scaler.executor.ready_endpoints() == [], (
                "all 200 arrived before the replica was ready"
            )
        elapsed = anyio.current_time() - start

    statuses = [status for status, _ in results.values()]
    assert len(results) == 200 and statuses == [200] * 200, sorted(set(statuses))
    assert elapsed >= 2.0, "they waited for the model to load"
    assert sse_events == [3] * 40
    # One replica served them one after the other (container_concurrency 1): the backend's
    # request counter follows the arrival order, per client and round by round.
    for c in range(clients):
        ns = [results[(c, k)][1] for k in range(per_client)]
        assert ns == sorted(ns), f"client {c} was served out of order: {ns}"
    rounds = [[results[(c, k)][1] for c in range(clients)] for k in range(per_client)]
    assert all(max(a) < min(b) for a, b in itertools.pairwise(rounds))
    stats = buffer.statistics()
    assert stats.activations == 1, "one scale-up asked for, however many waited"
    assert stats.timeouts == 0 and stats.rejected_full == 0 and stats.admitted_after_wait == 200
    # The live feed saw the cold start (desired 0 -> 1 with no replica ready), then the replica.
    events = [(e.name, dict(e.data)) for e in iter(feed.next_nowait, None)]
    up = next(d for n, d in events if n == "scale" and d["desired"] == 1)
    assert up["ready"] == 0 and up["cold_start"] is True and up["previous"] == 0
    assert [d["ready"] for n, d in events if n == "replicas" and d["service"] == "llm"][:1] == [1]


async def test_buffer_timeout_answers_503_with_retry_after_and_keeps_loading(
    anyio_backend: object, tmp_path: Path
) -> None:
    port = free_port()
    async with gateway_for(tmp_path, scaled_config(port, delay=30.0, timeout="1s")) as (gateway, _):
        front = front_of(gateway)
        assert front.scaler is not None

        statuses: list[tuple[int, str | None, str]] = []

        async def one(i: int) -> None:
            r = await fetch(port, f"/v1/x?i={i}")
            statuses.append((r.status, r.headers.get("retry-after"), r.json()["error"]["type"]))

        # Nothing hangs: the backend takes 30 s to load, yet every request is answered well
        # before that (the bound is generous: these machines are noisy, so no tighter timing).
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for i in range(200):
                    tg.start_soon(one, i)
        assert statuses == [(503, "1", "cold_start_timeout")] * 200
        # The replica that is loading was not killed because the requests gave up.
        replicas = front.scaler.executor.snapshot()["replicas"]
        assert len(replicas) == 1 and replicas[0]["pid"] and replicas[0]["restarts"] == 0
        assert front.scaler.buffer.statistics().activations == 1


async def test_sse_keepalive_while_the_replica_loads(anyio_backend: object, tmp_path: Path) -> None:
    port = free_port()
    text = scaled_config(port, delay=0.6, timeout="20s", keepalive="50ms", cc=0)
    async with gateway_for(tmp_path, text) as (_, client):
        async with client.stream("GET", "/sse", headers={"accept": "text/event-stream"}) as r:
            assert r.status_code == 200 and r.headers["content-type"] == "text/event-stream"
            assert r.headers["x-a3s-cold-start"] == "buffered"
            body = (await r.aread()).decode()
        assert body.count(": waiting for a replica") >= 3
        assert body.count("data: ") == 3
        # A client that does not accept SSE simply waits.
        plain = await client.get("/v1/x")
        assert plain.status_code == 200 and "x-a3s-cold-start" not in plain.headers


async def test_without_the_buffer_a_cold_service_answers_503_and_still_scales_up(
    anyio_backend: object, tmp_path: Path
) -> None:
    # buffer_enabled = false: nothing waits, but the refused requests are the demand that starts
    # the replica (Knative counts them at the activator); once it is ready they are served.
    port = free_port()
    text = scaled_config(port, delay=0.3, timeout="5s", buffered=False)
    async with gateway_for(tmp_path, text) as (gateway, client):
        scaler = front_of(gateway).scaler
        assert scaler is not None and scaler.executor.ready_endpoints() == []
        refused: list[tuple[int, str | None, str]] = []
        with anyio.fail_after(20):
            while (response := await client.get("/v1/x")).status_code != 200:
                error = response.json()["error"]["type"]
                refused.append((response.status_code, response.headers.get("retry-after"), error))
                await anyio.sleep(0.05)
        assert refused and set(refused) == {(503, "5", "no_healthy_backend")}
        assert response.json()["name"] == "backend"
        assert len(scaler.executor.ready_endpoints()) == 1
        stats = scaler.buffer.statistics()
        assert stats.refused == len(refused) and stats.queued == 0 and stats.admitted_after_wait == 0


async def fill_backlog(url: str) -> list[anyio.abc.SocketStream]:
    """Connect to a stopped server until its listen backlog is full: the next connect hangs."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    streams: list[anyio.abc.SocketStream] = []
    while len(streams) < 64:
        with anyio.move_on_after(0.5) as scope:
            streams.append(await anyio.connect_tcp(host, int(port)))
        if scope.cancelled_caught:
            return streams
    raise AssertionError(f"the backlog of {url} never filled")


async def test_a_request_whose_replica_leaves_rotation_while_it_connects_waits_for_the_next(
    anyio_backend: object, tmp_path: Path
) -> None:
    # The replica is stopped with a full listen backlog, so the request's connect hangs; then it
    # dies, the executor takes it out of rotation, and the connect is refused. Nothing reached a
    # replica, so the request waits in the buffer for the one the executor starts instead (it
    # restarts 2 s later: no other replica is ready when the connect fails, hence no 502 before).
    port = free_port()
    text = (
        scaled_config(port, delay=0.3, timeout="30s", cc=0)
        .replace("min_replicas          = 0", "min_replicas          = 1")
        .replace('--event-gap 0.01"', '--event-gap 0.01 --backlog 1"\n      restart_backoff = "2s"')
    )
    async with gateway_for(tmp_path, text) as (gateway, client):
        scaler = front_of(gateway).scaler
        assert scaler is not None
        await eventually(lambda: len(scaler.executor.ready_endpoints()) == 1, timeout=20)
        [replica] = scaler.executor.snapshot()["replicas"]
        responses: list[httpx.Response] = []

        async def send() -> None:
            responses.append(await client.get("/v1/x"))

        os.kill(replica["pid"], signal.SIGSTOP)
        fillers: list[anyio.abc.SocketStream] = []
        try:
            fillers = await fill_backlog(replica["url"])
            async with anyio.create_task_group() as tg:
                tg.start_soon(send)
                # It holds a slot on the replica and waits for the connect to complete.
                await eventually(lambda: scaler.buffer.statistics().in_flight == 1)
                os.kill(replica["pid"], signal.SIGKILL)
                await eventually(lambda: scaler.executor.ready_endpoints() == [])
                await eventually(lambda: scaler.buffer.statistics().queued == 1)
        finally:
            if replica["url"] in scaler.executor.ready_endpoints():  # failed before the SIGKILL
                os.kill(replica["pid"], signal.SIGKILL)
            for stream in fillers:
                await stream.aclose()
        [response] = responses
        assert response.status_code == 200, response.text
        assert response.json()["pid"] != replica["pid"]
        assert scaler.executor.ready_endpoints() != [replica["url"]]
        stats = scaler.buffer.statistics()
        assert stats.admitted_after_wait == 1 and stats.in_flight == 0 and stats.queued == 0


async def serve_one_probe_connection(listener: anyio.abc.SocketListener, probes: dict[str, int]) -> None:
    """Accept one connection (the static executor's keep-alive probe client) and answer its
    probes, 200 while `probes["healthy"]`, else 503, counting them in `probes["answered"]`;
    accept nothing else, so that later connects queue."""
    stream = await listener.accept()
    conn = h11.Connection(h11.SERVER)
    async with stream:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    conn.receive_data(await stream.receive())
                except anyio.EndOfStream:
                    return
            elif isinstance(event, h11.EndOfMessage):
                status = 200 if probes["healthy"] else 503
                response = h11.Response(status_code=status, headers=[("content-length", "0")])
                probes["answered"] += 1
                await stream.send(conn.send(response) + conn.send(h11.EndOfMessage()))
                conn.start_next_cycle()


async def test_a_keepalive_stream_whose_replica_leaves_rotation_while_it_connects_waits_again(
    anyio_backend: object, tmp_path: Path
) -> None:
    # A waiting SSE request is admitted on replica A, whose connect hangs (A accepts nothing and
    # its backlog is full); A's probe then fails, so it leaves rotation, and its connect is
    # refused. The stream keeps waiting (comment lines) and is served by B once B is ready.
    port, b_port = free_ports(2)
    b_url = f"http://127.0.0.1:{b_port}"
    probes = {"healthy": False, "answered": 0}
    async with await anyio.create_tcp_listener(local_host="127.0.0.1", backlog=1) as listeners:
        [listener] = listeners.listeners
        assert isinstance(listener, anyio.abc.SocketListener)
        a_url = f"http://127.0.0.1:{listener.extra(anyio.abc.SocketAttribute.local_port)}"
        text = f"""
entrypoints "web" {{ address = "127.0.0.1:{port}" }}
routers "all" {{
  rule    = "PathPrefix(`/`)"
  service = "llm"
}}
services "llm" {{
  load_balancer {{ servers = [{{ url = "{a_url}" }}, {{ url = "{b_url}" }}] }}
  scaling {{
    buffer_timeout   = "30s"
    buffer_keepalive = "50ms"
    executor         = "static"
    static {{
      health_path = "/health"
      interval    = "20ms"
    }}
  }}
}}
"""
        async with gateway_for(tmp_path, text) as (gateway, client), anyio.create_task_group() as tg:
            scaler = front_of(gateway).scaler
            assert scaler is not None
            tg.start_soon(serve_one_probe_connection, listener, probes)
            await eventually(lambda: probes["answered"] > 0)  # the probes' connection is the one accepted
            fillers = await fill_backlog(a_url)
            headers = {"accept": "text/event-stream"}
            async with client.stream("GET", "/sse", headers=headers) as response:
                assert response.status_code == 200 and response.headers["x-a3s-cold-start"] == "buffered"
                probes["healthy"] = True  # A is ready: the request is admitted and connects to it
                await eventually(lambda: scaler.buffer.statistics().in_flight == 1)
                probes["healthy"] = False  # A leaves rotation while the connect hangs
                await eventually(lambda: scaler.executor.ready_endpoints() == [])
                for stream in fillers:
                    await stream.aclose()
                await listener.aclose()  # the connect's next SYN is refused
                await eventually(lambda: scaler.buffer.statistics().queued == 1)
                async with backend_process_on(b_port, "--name", "b"):
                    body = (await response.aread()).decode()
            tg.cancel_scope.cancel()
    assert "event: error" not in body and ": waiting for a replica" in body
    events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
    assert [e["name"] for e in events] == ["b"] * 3


# --------------------------------------------------------------------------- rollout


@asynccontextmanager
async def backend_process(*args: str) -> AsyncIterator[str]:
    async with backend_process_on(free_port(), *args) as url:
        yield url


@asynccontextmanager
async def backend_process_on(port: int, *args: str) -> AsyncIterator[str]:
    argv = [sys.executable, str(BACKEND), "--port", str(port), *args]
    process = await anyio.open_process(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(trust_env=False) as probe:
            with anyio.fail_after(10):
                while True:
                    try:
                        if (await probe.get(url + "/health")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        await anyio.sleep(0.02)
        yield url
    finally:
        process.terminate()
        await process.aclose()


def rollout_config(port: int, v1: str, v2: str, step: float) -> str:
    return f"""
entrypoints "web" {{ address = "127.0.0.1:{port}" }}

routers "all" {{
  rule    = "PathPrefix(`/`)"
  service = "llm"
}}

services "llm" {{
  revisions = [
    {{ name = "v1", traffic_percent = 100, servers = [{{ url = "{v1}" }}] }},
    {{ name = "v2", traffic_percent = 0, tag = "canary", servers = [{{ url = "{v2}" }}] }},
  ]
  rollout {{
    from                 = "v1"
    to                   = "v2"
    step_percent         = 25
    step_interval_secs   = {step}
    error_rate_threshold = 0.01
    latency_threshold_ms = 2000
    min_requests         = 20
  }}
}}
"""


async def drive(client: httpx.AsyncClient, front: ScalingFront, seconds: float) -> dict[str, list[int]]:
    """Steady traffic from 8 clients until the rollout finishes; statuses per revision."""
    seen: dict[str, list[int]] = {"v1": [], "v2": []}
    revisions = front.revisions
    assert revisions is not None

    async def loop() -> None:
        while revisions.state is not None and not revisions.state.finished:
            r = await client.get("/v1/x")
            seen[r.json()["name"]].append(r.status_code)

    with anyio.move_on_after(seconds):
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(loop)
    return seen


async def test_rollout_to_a_healthy_revision_reaches_100_percent(
    anyio_backend: object, tmp_path: Path
) -> None:
    async with (
        backend_process("--name", "v1") as v1,
        backend_process("--name", "v2") as v2,
        gateway_for(tmp_path, rollout_config(free_port(), v1, v2, 0.15)) as (gateway, client),
    ):
        front = front_of(gateway)
        assert front.revisions is not None
        feed = gateway.live.subscribe(frozenset({"rollout"}))
        seen = await drive(client, front, 15)
        state = front.revisions.state
        assert state is not None and state.phase is Phase.DONE and state.percentage == 100
        assert len(state.log) == 4
        steps = [dict(e.data) for e in iter(feed.next_nowait, None)]
        assert [(d["phase"], d["step"], d["percentage"]) for d in steps] == [
            ("stepping", 2, 50.0), ("stepping", 3, 75.0), ("stepping", 4, 100.0), ("done", 4, 100.0)
        ]  # fmt: skip
        assert set(seen["v1"]) == {200} and set(seen["v2"]) == {200} and seen["v2"]
        # Done: every request now goes to v2; a pinned request still reaches v1.
        assert (await client.get("/v1/x")).json()["name"] == "v2"
        assert (await client.get("/v1/x", headers={"x-a3s-revision": "v1"})).json()["name"] == "v1"


async def test_rollout_to_a_failing_revision_rolls_back_within_one_step(
    anyio_backend: object, tmp_path: Path
) -> None:
    step = 2.0
    async with (
        backend_process("--name", "v1") as v1,
        backend_process("--name", "v2", "--error-every", "20") as v2,  # 5 % of answers are 500
        gateway_for(tmp_path, rollout_config(free_port(), v1, v2, step)) as (gateway, client),
    ):
        front = front_of(gateway)
        revisions = front.revisions
        assert revisions is not None and revisions.state is not None
        feed = gateway.live.subscribe(frozenset({"rollout"}))
        seen = await drive(client, front, 15)
        state = revisions.state
        assert state.phase is Phase.ROLLED_BACK and state.percentage == 0 and "error rate" in state.reason
        [rollback] = [dict(e.data) for e in iter(feed.next_nowait, None)]
        assert rollback["phase"] == "rolled_back" and rollback["service"] == "llm" and rollback["to"] == "v2"
        assert "error rate" in rollback["reason"] and rollback["percentage"] == 0
        # Rolled back within one step interval: judged and reverted at the end of the first step.
        assert state.step == 1, "caught in the first step"
        # Clients saw exactly the errors of that step, nothing from v1, nothing after.
        errors = [s for s in seen["v2"] if s >= 500]
        assert errors and len(errors) == revisions.stats["v2"].total_errors
        assert set(seen["v1"]) == {200}
        after = [(await client.get("/v1/x")).json()["name"] for _ in range(30)]
        assert set(after) == {"v1"}
        # The canary tag still reaches v2 for whoever asks for it.
        assert (await client.get("/v1/x", headers={"x-a3s-revision": "canary"})).json()["name"] == "v2"


def reload_config(port: int, v1: str, v2: str, *, max_replicas: int, step: int, name: str) -> str:
    command = f"{sys.executable} {BACKEND} --port {{port}} --name {name}"
    return (
        rollout_config(port, v1, v2, 60).replace("step_percent         = 25", f"step_percent = {step}")
        + f"""
routers "scaled" {{
  rule    = "PathPrefix(`/scaled`)"
  service = "llm2"
}}

services "llm2" {{
  scaling {{
    min_replicas = 1
    max_replicas = {max_replicas}
    executor     = "process"
    process {{
      command        = "{command}"
      probe_interval = "20ms"
      output         = "discard"
    }}
  }}
}}
"""
    )


async def test_a_reload_keeps_the_rollout_and_the_replicas(anyio_backend: object, tmp_path: Path) -> None:
    port = free_port()
    async with backend_process("--name", "v1") as v1, backend_process("--name", "v2") as v2:
        text = reload_config(port, v1, v2, max_replicas=2, step=25, name="a")
        async with gateway_for(tmp_path, text) as (gateway, client):
            scaler = front_of(gateway, "llm2").scaler
            revisions = front_of(gateway).revisions
            assert scaler is not None and revisions is not None and revisions.state is not None
            await eventually(lambda: len(scaler.executor.ready_endpoints()) == 1)  # min_replicas
            pid = scaler.executor.snapshot()["replicas"][0]["pid"]
            before = revisions.state
            assert (await client.get("/scaled/x")).json()["name"] == "a"

            # Autoscaler knobs and the rollout's pace change: same replicas, same rollout.
            (tmp_path / "gw.hcl").write_text(reload_config(port, v1, v2, max_replicas=3, step=50, name="a"))
            await gateway.reload()
            assert front_of(gateway, "llm2").scaler is scaler and scaler.scaling.max_replicas == 3
            assert scaler.executor.snapshot()["replicas"][0]["pid"] == pid
            assert front_of(gateway).revisions is revisions and revisions.state == before
            assert (await client.get("/scaled/x")).json()["name"] == "a"

            # A different command is a different executor: new replicas, the old one stops.
            (tmp_path / "gw.hcl").write_text(reload_config(port, v1, v2, max_replicas=3, step=50, name="b"))
            await gateway.reload()
            fresh = front_of(gateway, "llm2").scaler
            assert fresh is not None and fresh is not scaler
            await eventually(lambda: len(fresh.executor.ready_endpoints()) == 1)
            assert (await client.get("/scaled/x")).json()["name"] == "b"
            await eventually(lambda: not scaler.executor.snapshot()["replicas"])


# --------------------------------------------------------------------------- scaled revisions


def scaled_revisions_config(port: int, *, delay: float) -> str:
    """Both revisions scale on their own: v1 with the service's block as it is, v2 with its own command."""
    revisions = f"""  revisions = [
    {{ name = "v1", traffic_percent = 100, scaling = {{}} }},
    {{ name = "v2", traffic_percent = 0, tag = "canary",
       scaling = {{ process = {{ command = "{backend_command(delay)} --name v2" }} }} }},
  ]"""
    return scaled_config(port, delay=delay, timeout="30s", revisions=revisions)


async def test_each_revision_scales_from_zero_on_its_own(anyio_backend: object, tmp_path: Path) -> None:
    port = free_port()
    async with gateway_for(tmp_path, scaled_revisions_config(port, delay=1.0)) as (gateway, client):
        front = front_of(gateway)
        assert front.scaler is None and set(front.revision_scalers) == {"v1", "v2"}
        v1, v2 = front.revision_scalers["v1"], front.revision_scalers["v2"]
        assert v1 is not v2 and v1.service == "llm/v1"
        assert v1.executor.ready_endpoints() == [] and v2.executor.ready_endpoints() == []

        # A canary request cold-starts v2's model (its own command), and only that one.
        answers: list[tuple[int, str]] = []

        async def canary() -> None:
            response = await client.get("/v1/x", headers={"x-a3s-revision": "canary"})
            answers.append((response.status_code, response.json()["name"]))

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(canary)
        assert answers == [(200, "v2")] * 5
        assert len(v2.executor.ready_endpoints()) == 1
        assert v1.executor.ready_endpoints() == []
        assert v2.buffer.statistics().activations == 1

        # The split's traffic (v1 at 100 %) cold-starts v1 separately.
        response = await client.get("/v1/x")
        assert (response.status_code, response.json()["name"]) == (200, "v1")
        assert len(v1.executor.ready_endpoints()) == 1

        # The rollout's numbers: v2's requests all succeeded, and the second of model loading
        # the first ones waited in the buffer is not in the latency the rollout judges.
        assert front.revisions is not None
        stats = front.revisions.stats["v2"]
        assert (stats.total_requests, stats.total_errors) == (5, 0)
        assert stats.snapshot(front.revisions.clock.now())["recent_p99_ms"] < 500

        # The state API shows each revision's scaler.
        assert set(front.snapshot()["revision_scalers"]) == {"v1", "v2"}

        # A reload that changes how v1's replicas are made rebuilds v1's scaler only: v2's
        # replica, its buffer and its numbers carry on.
        path = tmp_path / "gw.hcl"
        path.write_text(path.read_text().replace("--name v1", "--name v1b"))
        await gateway.reload()
        after = front_of(gateway)
        assert after.revision_scalers["v2"] is v2 and after.revision_scalers["v1"] is not v1
        assert after.revisions is front.revisions and len(v2.executor.ready_endpoints()) == 1
        response = await client.get("/v1/x", headers={"x-a3s-revision": "v2"})
        assert (response.status_code, response.json()["name"]) == (200, "v2")
        response = await client.get("/v1/x")
        assert (response.status_code, response.json()["name"]) == (200, "v1b")


async def test_a_keepalive_stream_counts_for_the_revision_when_the_replica_answers(
    anyio_backend: object, tmp_path: Path
) -> None:
    port = free_port()
    revisions = f"""  revisions = [
    {{ name = "v1", traffic_percent = 100, scaling = {{}} }},
    {{ name = "v2", traffic_percent = 0, tag = "canary",
       scaling = {{ process = {{ command = "{backend_command(0.5)} --name v2 --error-every 1" }} }} }},
  ]"""
    config = scaled_config(port, delay=0.5, timeout="30s", keepalive="100ms", revisions=revisions)
    async with gateway_for(tmp_path, config) as (gateway, client):
        front = front_of(gateway)
        assert front.revisions is not None
        headers = {"x-a3s-revision": "canary", "accept": "text/event-stream"}
        response = await client.get("/v1/x", headers=headers)
        # The 200 went out while v2 loaded; the replica's 500 arrives as an SSE error event...
        assert response.status_code == 200
        assert ": waiting for a replica" in response.text and "event: error" in response.text
        # ...and that 500, not the early 200, is what the rollout's numbers hold.
        stats = front.revisions.stats["v2"]
        assert (stats.total_requests, stats.total_errors) == (1, 1)
