"""Acceptance tests of issue 5 on a real gateway with real backend processes.

Backends are tests/service_backend.py processes (each answer names its backend). The headline
test kills one of three backends under load: traffic moves to the others, no client sees an
error beyond the requests that were in flight on the killed backend, and the backend rejoins
once restarted. The others check each service feature end to end: exact in-flight counts under
streaming, sticky sessions, failover, mirroring, passive health, draining on reload, the 503 body.
"""

from __future__ import annotations

import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from a3s_gateway.runtime.api import Backend
from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.runtime.service import HttpService
from a3s_gateway.stdlib.scalers import ScalingFront

from .stubs import Children, free_port
from .stubs import eventually as _eventually

pytestmark = pytest.mark.anyio

BACKEND = Path(__file__).with_name("service_backend.py")


class Processes(Children):
    """Backend processes by name, each on a fixed port so a restart comes back at the same URL."""

    def __init__(self) -> None:
        super().__init__()
        self.ports: dict[str, int] = {}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports.setdefault(name, free_port())}"

    def start(self, name: str, *flags: str) -> None:
        self.url(name)
        self.spawn(
            name, [sys.executable, str(BACKEND), "--port", str(self.ports[name]), "--name", name, *flags]
        )

    async def astart(self, name: str, *flags: str) -> None:
        await anyio.to_thread.run_sync(lambda: self.start(name, *flags))


@pytest.fixture
def procs() -> Iterator[Processes]:
    processes = Processes()
    try:
        yield processes
    finally:
        processes.close()


def servers(procs: Processes, *names: str) -> str:
    return ", ".join(f'{{ url = "{procs.url(n)}" }}' for n in names)


HEALTH = """
    health_check {
      path = "/health"
      interval = "50ms"
      timeout = "1s"
      unhealthy_threshold = 1
      healthy_threshold = 1
    }"""


def gateway_config(port: int, services: str, router_service: str = "api") -> str:
    return f"""
entrypoints "web" {{ address = "127.0.0.1:{port}" }}

routers "all" {{
  rule    = "PathPrefix(`/`)"
  service = "{router_service}"
}}
{services}
"""


@asynccontextmanager
async def running(
    tmp_path: Path, services: str, router_service: str = "api"
) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    port = free_port()
    path = tmp_path / "gw.hcl"
    path.write_text(gateway_config(port, services, router_service))
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with (
        Gateway(str(path)) as gateway,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30, trust_env=False
        ) as client,
    ):
        yield gateway, client


def service(gateway: Gateway, name: str = "api") -> HttpService:
    return gateway.graph.services[name]


def backend(gateway: Gateway, url: str, name: str = "api") -> Backend:
    return next(b for b in service(gateway, name).backends if b.url == url)


async def eventually(cond: Callable[[], bool]) -> None:
    # A wider bound than the shared helper's: health checks and failovers take a few periods.
    await _eventually(cond, timeout=30.0)


async def failure(client: httpx.AsyncClient, path: str = "/x", **kwargs: object) -> tuple[int, str]:
    """The status and JSON error type of a request the gateway answers with an error."""
    response = await client.get(path, **kwargs)  # type: ignore[arg-type]
    return response.status_code, str(response.json()["error"]["type"])


async def who(client: httpx.AsyncClient, path: str = "/x", **kwargs: object) -> str:
    response = await client.get(path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    return str(response.json()["backend"])


# --------------------------------------------------------------------------- the acceptance test


async def test_killing_a_backend_moves_traffic_and_it_rejoins(
    anyio_backend: object, tmp_path: Path, procs: Processes
) -> None:
    for name in ("b1", "b2", "b3"):
        procs.start(name)
    config = f"""
services "api" {{
  load_balancer {{
    strategy = "round-robin"
    servers  = [{servers(procs, "b1", "b2", "b3")}]
{HEALTH}
  }}
}}"""
    async with running(tmp_path, config) as (gateway, client):
        b2 = backend(gateway, procs.url("b2"))
        errors: list[str] = []
        # (phase, backend) of each successful request; the phase is the one it *started* in: a
        # response b2 wrote before it was killed can still be read after its health check failed.
        served: list[tuple[str, str]] = []
        phase = "before"
        stop = anyio.Event()

        async def steady(worker: int) -> None:
            while not stop.is_set():
                started = phase
                try:
                    served.append((started, await who(client, f"/x?w={worker}")))
                except Exception as exc:
                    errors.append(f"steady: {exc!r}")

        async def stream() -> None:
            try:
                async with client.stream("GET", "/stream?n=40&ms=25") as response:
                    text = (await response.aread()).decode()
                if response.status_code != 200 or text.count("\n") != 40:
                    errors.append(f"stream: {response.status_code} {text[-20:]!r}")
            except Exception as exc:
                errors.append(f"stream: {exc!r}")

        async with anyio.create_task_group() as tg:
            for worker in range(8):
                tg.start_soon(steady, worker)
            for _ in range(6):  # round robin: two long streams land on each backend
                tg.start_soon(stream)
            await eventually(lambda: b2.in_flight >= 2 and len(served) >= 30)
            # No await between reading the count and the kill: no request can start in between.
            in_flight_on_b2 = b2.in_flight
            procs.kill("b2")
            phase = "killed"
            await eventually(lambda: not b2.healthy)
            phase = "down"
            await eventually(lambda: sum(p == "down" for p, _ in served) >= 60)
            phase = "restarting"
            await procs.astart("b2")
            await eventually(lambda: b2.healthy)
            phase = "rejoined"
            await eventually(lambda: Counter(b for p, b in served if p == "rejoined")["b2"] >= 5)
            stop.set()

    # Only requests that were on b2 when it died may fail (streams cut mid-body, or short requests
    # it had accepted); everything picked after the kill went elsewhere or was retried elsewhere.
    assert len(errors) <= in_flight_on_b2, errors
    down = Counter(b for p, b in served if p == "down")
    assert down["b2"] == 0 and down["b1"] > 0 and down["b3"] > 0, down
    assert b2.in_flight == 0


# --------------------------------------------------------------------------- in-flight accounting


async def test_in_flight_counts_until_the_body_ends_or_the_client_leaves(
    anyio_backend: object, tmp_path: Path, procs: Processes
) -> None:
    procs.start("b1")
    config = f"""
services "api" {{
  load_balancer {{ servers = [{servers(procs, "b1")}] }}
}}"""
    async with running(tmp_path, config) as (gateway, client):
        b1 = backend(gateway, procs.url("b1"))
        async with client.stream("GET", "/stream?n=4&ms=20") as response:
            assert response.status_code == 200
            assert b1.in_flight == 1  # the head is in, the body is still streaming
            body = await response.aread()
        assert body.count(b"\n") == 4
        await eventually(lambda: b1.in_flight == 0)

        # A client that goes away mid-stream releases the count too.
        port = int(str(client.base_url).rsplit(":", 1)[1].rstrip("/"))
        stream = await anyio.connect_tcp("127.0.0.1", port)
        await stream.send(b"GET /stream?n=1000&ms=20 HTTP/1.1\r\nhost: gw\r\n\r\n")
        assert b"200" in await stream.receive()
        assert b1.in_flight == 1
        await stream.aclose()
        await eventually(lambda: b1.in_flight == 0)


async def test_ewma_observes_latency(anyio_backend: object, tmp_path: Path, procs: Processes) -> None:
    procs.start("b1")
    procs.start("b2")
    config = f"""
services "api" {{
  load_balancer {{
    strategy = "ewma"
    servers  = [{servers(procs, "b1", "b2")}]
  }}
}}"""
    async with running(tmp_path, config) as (gateway, client):
        for _ in range(10):
            await who(client, "/slow?ms=5")
        observed = [b for b in service(gateway).backends if b.latency_stamp > 0]
        assert observed and all(b.latency_ewma >= 0.004 for b in observed)


# --------------------------------------------------------------------------- no backend, failover


async def test_no_healthy_backend_is_a_503_json(
    anyio_backend: object, tmp_path: Path, procs: Processes
) -> None:
    config = f"""
services "api" {{
  load_balancer {{
    servers = [{servers(procs, "dead")}]
{HEALTH}
  }}
}}"""
    async with running(tmp_path, config) as (gateway, client):
        await eventually(lambda: not service(gateway).backends[0].healthy)
        assert await failure(client) == (503, "no_healthy_backend")


async def test_failover_takes_traffic_and_gives_it_back(
    anyio_backend: object, tmp_path: Path, procs: Processes
) -> None:
    procs.start("backup")
    procs.start("last")
    config = f"""
services "api" {{
  load_balancer {{
    servers = [{servers(procs, "primary")}]
{HEALTH}
  }}
  failover {{ service = "spare" }}
}}
services "spare" {{
  load_balancer {{
    servers = [{servers(procs, "backup")}]
{HEALTH}
  }}
  failover {{ service = "final" }}
}}
services "final" {{
  load_balancer {{ servers = [{servers(procs, "last")}] }}
}}"""
    async with running(tmp_path, config) as (gateway, client):
        primary = service(gateway).backends[0]
        await eventually(lambda: not primary.healthy)
        assert await who(client) == "backup"
        procs.kill("backup")
        await eventually(lambda: not service(gateway, "spare").backends[0].healthy)
        assert await who(client) == "last"  # the chain is followed
        await procs.astart("primary")
        await eventually(lambda: primary.healthy)
        assert await who(client) == "primary"


@contextmanager
def blackhole() -> Iterator[str]:
    """A URL whose connects hang: a listener that never accepts, its one-slot queue filled, so
    the kernel drops further SYNs (a host that is down or firewalled, seen from here)."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler.connect(listener.getsockname())
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


async def test_a_connect_timeout_moves_the_request_to_another_backend(
    anyio_backend: object, tmp_path: Path, procs: Processes
) -> None:
    procs.start("alive")
    with blackhole() as dead:
        config = f"""
services "api" {{
  load_balancer {{ servers = [{{ url = "{dead}" }}, {servers(procs, "alive")}] }}
  timeouts {{ connect = "300ms" }}
}}"""
        async with running(tmp_path, config) as (gateway, client):
            # Round robin sends every other request to the black hole first: each still gets
            # its answer from the live backend, after one connect timeout, never a 504.
            assert [await who(client) for _ in range(4)] == ["alive"] * 4
            assert backend(gateway, dead).in_flight == 0


async def test_when_every_connect_times_out_the_client_gets_a_504(
    anyio_backend: object, tmp_path: Path
) -> None:
    with blackhole() as dead:
        config = f"""
services "api" {{
  load_balancer {{ servers = [{{ url = "{dead}" }}] }}
  timeouts {{ connect = "200ms" }}
}}"""
        async with running(tmp_path, config) as (_, client):
            assert await failure(client) == (504, "upstream_connect_timeout")


# --------------------------------------------------------------------------- sticky sessions


async def test_sticky_sessions_pin_and_repin(anyio_backend: object, tmp_path: Path, procs: Processes) -> None:
    for name in ("b1", "b2", "b3"):
        procs.start(name)
    config = f"""
services "api" {{
  load_balancer {{
    strategy = "round-robin"
    servers  = [{servers(procs, "b1", "b2", "b3")}]
{HEALTH}
    sticky {{
      cookie = "pin"
      ttl    = "1h"
      secure = true
    }}
  }}
}}"""
    async with running(tmp_path, config) as (_, client):
        first = await client.get("/x")
        set_cookie = first.headers["set-cookie"]
        assert "Max-Age=3600" in set_cookie and "Secure" in set_cookie and "HttpOnly" in set_cookie
        value = set_cookie.split(";")[0].split("=", 1)[1]
        pinned = first.json()["backend"]
        assert "127.0.0.1" not in value
        for _ in range(6):
            response = await client.get("/x", headers={"cookie": f"pin={value}"})
            assert response.json()["backend"] == pinned and "set-cookie" not in response.headers
        procs.kill(pinned)
        moved = await client.get("/x", headers={"cookie": f"pin={value}"})
        assert moved.status_code == 200 and moved.json()["backend"] != pinned
        assert "set-cookie" in moved.headers  # re-pinned
        again = await client.get("/x", headers={"cookie": f"pin={value}"})
        assert again.json()["backend"] == moved.json()["backend"]


# --------------------------------------------------------------------------- mirroring


async def test_mirroring_copies_requests_and_never_affects_the_client(
    anyio_backend: object, tmp_path: Path, procs: Processes
) -> None:
    procs.start("main")
    procs.start("shadow")
    config = f"""
services "api" {{
  load_balancer {{ servers = [{servers(procs, "main")}] }}
  mirror {{
    service    = "shadow"
    percentage = 100
  }}
}}
services "shadow" {{
  load_balancer {{ servers = [{servers(procs, "shadow")}] }}
}}"""
    async with running(tmp_path, config) as (gateway, client):
        policy = service(gateway).mirror
        assert policy is not None
        for i in range(5):
            response = await client.post(f"/x?i={i}", content=b"payload " * 100)
            assert response.status_code == 200
            assert response.json()["backend"] == "main" and response.json()["received"] == 800
        await eventually(lambda: policy.in_flight == 0 and policy.stats.mirrored == 5)
        async with httpx.AsyncClient(trust_env=False) as direct:
            counted = (await direct.get(procs.url("shadow") + "/count")).json()["n"]
        assert counted == 6  # five copies, then this direct request
        # A dead shadow is invisible to clients.
        procs.kill("shadow")
        for _ in range(3):
            assert await who(client) == "main"
        await eventually(lambda: policy.stats.failed == 3 and policy.in_flight == 0)


# --------------------------------------------------------------------------- passive health


async def test_passive_health_evicts_a_failing_backend(
    anyio_backend: object, tmp_path: Path, procs: Processes
) -> None:
    procs.start("good")
    procs.start("bad", "--fail")
    config = f"""
services "api" {{
  load_balancer {{
    servers = [{servers(procs, "good", "bad")}]
    passive_health {{
      max_failures = 2
      window       = "1m"
      cooldown     = "1h"
    }}
  }}
}}"""
    async with running(tmp_path, config) as (gateway, client):
        statuses = [(await client.get("/x")).status_code for _ in range(4)]
        assert statuses == [200, 500, 200, 500]  # round robin, until the second failure
        bad = backend(gateway, procs.url("bad"))
        assert not bad.healthy
        assert all([(await client.get("/x")).status_code == 200 for _ in range(6)])


# --------------------------------------------------------------------------- draining on reload


async def test_a_backend_removed_by_reload_finishes_its_streams(
    anyio_backend: object, tmp_path: Path, procs: Processes
) -> None:
    procs.start("b1")
    procs.start("b2")

    def config(*names: str) -> str:
        return f"""
services "api" {{
  load_balancer {{ servers = [{servers(procs, *names)}] }}
}}"""

    async with running(tmp_path, config("b1", "b2")) as (gateway, client):
        b2 = backend(gateway, procs.url("b2"))
        # Round robin from the first backend: the second request streams from b2.
        assert await who(client) == "b1"
        async with client.stream("GET", "/stream?n=10&ms=30") as response:
            assert b2.in_flight == 1
            path = tmp_path / "gw.hcl"
            path.write_text(path.read_text().replace(config("b1", "b2"), config("b1")))
            await gateway.reload()
            assert all(b.url != b2.url for b in service(gateway).backends)
            assert {await who(client) for _ in range(4)} == {"b1"}  # no new request for b2
            body = await response.aread()
        assert body.decode().count("b2 ") == 10  # the stream it had finished
        await eventually(lambda: b2.in_flight == 0)


# --------------------------------------------------------------------------- revisions


def revision_backends(gateway: Gateway, revision: str) -> list[Backend]:
    front = service(gateway).front
    assert isinstance(front, ScalingFront) and front.revisions is not None
    return front.revisions.backends[revision]


def revision_errors(gateway: Gateway, revision: str) -> int:
    front = service(gateway).front
    assert isinstance(front, ScalingFront) and front.revisions is not None
    return front.revisions.stats[revision].total_errors


async def test_a_revision_fails_over_a_refused_connect_and_evicts_a_failing_backend(
    anyio_backend: object, tmp_path: Path, procs: Processes
) -> None:
    procs.start("alive")
    procs.start("bad", "--fail")
    dead = procs.url("dead")  # a port nobody listens on: every connect is refused
    config = f"""
services "api" {{
  load_balancer {{
    passive_health {{
      max_failures = 2
      window       = "1m"
      cooldown     = "1h"
    }}
  }}
  revisions = [
    {{ name = "v1", traffic_percent = 100, servers = [{{ url = "{dead}" }}, {servers(procs, "alive")}] }},
    {{ name = "v2", traffic_percent = 0, tag = "canary", servers = [{servers(procs, "alive", "bad")}] }},
  ]
}}"""
    async with running(tmp_path, config) as (gateway, client):
        # Round robin tries the refused backend first every other time: the request moves to
        # the live one, so the client and the revision's error count never see it.
        assert [await who(client) for _ in range(6)] == ["alive"] * 6
        dead_backend, alive = revision_backends(gateway, "v1")
        assert not dead_backend.healthy and alive.healthy  # evicted by passive health
        assert revision_errors(gateway, "v1") == 0

        # A backend answering 500 is not a connect failure: the client sees it, the revision
        # counts it, and passive health evicts the backend after the second one.
        canary = {"x-a3s-revision": "canary"}
        statuses = [(await client.get("/x", headers=canary)).status_code for _ in range(4)]
        assert statuses == [200, 500, 200, 500]
        assert not revision_backends(gateway, "v2")[1].healthy
        assert revision_errors(gateway, "v2") == 2
        assert all([(await client.get("/x", headers=canary)).status_code == 200 for _ in range(4)])


async def test_revision_backends_are_health_checked_counted_and_failed_over(
    anyio_backend: object, tmp_path: Path, procs: Processes
) -> None:
    procs.start("b1")
    procs.start("spare")
    config = f"""
services "api" {{
  load_balancer {{
{HEALTH}
  }}
  revisions = [
    {{ name = "v1", traffic_percent = 100, servers = [{servers(procs, "b1")}] }},
    {{ name = "v2", traffic_percent = 0, tag = "canary", servers = [{servers(procs, "down")}] }},
  ]
  failover {{ service = "spare" }}
}}
services "spare" {{
  load_balancer {{ servers = [{servers(procs, "spare")}] }}
}}"""
    async with running(tmp_path, config) as (gateway, client):
        (b1,) = revision_backends(gateway, "v1")
        (down,) = revision_backends(gateway, "v2")
        await eventually(lambda: not down.healthy)  # the active probe judges revision servers
        assert b1.healthy

        # A pinned request to a revision with nothing available: a 503, counted against it.
        assert await failure(client, headers={"x-a3s-revision": "v2"}) == (503, "no_healthy_backend")
        assert revision_errors(gateway, "v2") == 1

        # In flight on a revision backend until the body ends.
        async with client.stream("GET", "/stream?n=4&ms=20") as streamed:
            assert streamed.status_code == 200
            assert b1.in_flight == 1
            await streamed.aread()
        await eventually(lambda: b1.in_flight == 0)

        # No revision has an available backend: the failover service takes the traffic, and
        # gives it back when the revision's server is healthy again.
        procs.kill("b1")
        await eventually(lambda: not b1.healthy)
        assert await who(client) == "spare"
        await procs.astart("b1")
        await eventually(lambda: b1.healthy)
        assert await who(client) == "b1"


async def test_a_revision_balances_with_its_own_strategy(
    anyio_backend: object, tmp_path: Path, procs: Processes
) -> None:
    for name in ("a", "b", "c", "d"):
        procs.start(name)
    config = f"""
services "api" {{
  revisions = [
    {{ name = "v1", traffic_percent = 100, strategy = "weighted",
       servers = [{{ url = "{procs.url("a")}", weight = 1 }}, {{ url = "{procs.url("b")}", weight = 3 }}] }},
    {{ name = "v2", traffic_percent = 0, tag = "canary",
       servers = [{{ url = "{procs.url("c")}", weight = 1 }}, {{ url = "{procs.url("d")}", weight = 3 }}] }},
  ]
}}"""
    async with running(tmp_path, config) as (_, client):
        # v1 asks for weighted round robin: 1:3. v2 has no strategy of its own and takes the
        # service's (round robin, weights ignored): 1:1.
        v1 = Counter([await who(client) for _ in range(8)])
        assert v1 == {"a": 2, "b": 6}
        canary = {"headers": {"x-a3s-revision": "canary"}}
        v2 = Counter([await who(client, **canary) for _ in range(8)])
        assert v2 == {"c": 4, "d": 4}


async def test_a_scaled_service_moves_a_refused_request_to_another_replica(
    anyio_backend: object, tmp_path: Path, procs: Processes
) -> None:
    procs.start("alive")
    dead = procs.url("dead")  # listed and, without a health_path, counted as ready: it refuses
    config = f"""
services "api" {{
  load_balancer {{ servers = [{{ url = "{dead}" }}, {servers(procs, "alive")}] }}
  scaling {{
    executor     = "static"
    min_replicas = 1
  }}
}}"""
    async with running(tmp_path, config) as (gateway, client):
        front = service(gateway).front
        assert isinstance(front, ScalingFront) and front.scaler is not None
        assert sorted(front.scaler.executor.ready_endpoints()) == sorted([dead, procs.url("alive")])
        # Round robin offers the refusing replica every other time: the request moves on.
        assert [await who(client) for _ in range(6)] == ["alive"] * 6
        stats = front.scaler.buffer.statistics()
        assert stats.in_flight == 0  # every lease, the refused ones too, was given back

    # With no other replica to go to, the client gets the connect failure as a 502.
    config = f"""
services "api" {{
  load_balancer {{ servers = [{{ url = "{dead}" }}] }}
  scaling {{ executor = "static" }}
}}"""
    async with running(tmp_path, config) as (_, client):
        assert await failure(client) == (502, "upstream_connect_failed")


async def test_a_server_removed_by_reload_is_forgotten_and_comes_back_clean(
    anyio_backend: object, tmp_path: Path, procs: Processes
) -> None:
    procs.start("good")
    procs.start("bad", "--fail")

    def config(*v1: str) -> str:
        return f"""
services "api" {{
  load_balancer {{
    passive_health {{
      max_failures = 1
      window       = "1m"
      cooldown     = "1h"
    }}
  }}
  revisions = [{{ name = "v1", traffic_percent = 100, servers = [{servers(procs, *v1)}] }}]
}}"""

    async with running(tmp_path, config("good", "bad")) as (gateway, client):
        assert [(await client.get("/x")).status_code for _ in range(2)] == [200, 500]
        bad_url = procs.url("bad")
        assert not revision_backends(gateway, "v1")[1].healthy  # evicted for an hour
        passive = service(gateway).health.passive
        assert passive is not None and passive.evicted_until(bad_url) is not None

        path = tmp_path / "gw.hcl"
        path.write_text(path.read_text().replace(config("good", "bad"), config("good")))
        await gateway.reload()
        assert passive.evicted_until(bad_url) is None  # its record went with it

        # Back in the config (fixed meanwhile), it is not still serving its old eviction.
        procs.kill("bad")
        procs.start("bad")
        path.write_text(path.read_text().replace(config("good"), config("good", "bad")))
        await gateway.reload()
        assert revision_backends(gateway, "v1")[1].healthy
        assert {await who(client) for _ in range(4)} == {"good", "bad"}
