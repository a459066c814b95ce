"""Active and passive health: the pure state machines on a manual clock, the probe and the
checker loop against a real HTTP server."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc
import httpx
import pytest

from a3s_gateway.compiler.schema import HealthCheckConfig, PassiveHealthConfig
from a3s_gateway.runtime.api import Backend
from a3s_gateway.runtime.clock import ManualClock
from a3s_gateway.stdlib import registry
from a3s_gateway.stdlib.health.http import JITTER, HealthChecker, ProbeState, next_delay, probe, probe_url
from a3s_gateway.stdlib.health.passive import PassiveHealth, parse_statuses

from .stubs import eventually, free_port

# --------------------------------------------------------------------------- a real HTTP server


@dataclass
class ProbeServer:
    """A tiny HTTP/1.1 server answering every request with `status`, recording request heads."""

    port: int = 0
    status: int = 200
    hang: bool = False
    heads: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                try:
                    data += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
            self.heads.append(data.split(b"\r\n\r\n", 1)[0])
            if self.hang:
                await anyio.sleep_forever()
            await stream.send(
                f"HTTP/1.1 {self.status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".encode()
            )


@asynccontextmanager
async def serving() -> AsyncIterator[ProbeServer]:
    server = ProbeServer()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    server.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, server.handle)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


# --------------------------------------------------------------------------- the probe state machine


@pytest.mark.parametrize(
    ("healthy", "streak", "good", "expect_healthy", "expect_streak", "flipped"),
    [
        (True, 0, True, True, 0, False),  # healthy, good: stays, streak reset
        (True, 1, True, True, 0, False),  # a good probe breaks a run of failures
        (True, 0, False, True, 1, False),  # healthy, bad below threshold: counts
        (True, 2, False, False, 0, True),  # healthy, bad reaching threshold 3: flips
        (False, 0, False, False, 0, False),  # unhealthy, bad: stays
        (False, 1, False, False, 0, False),  # a bad probe breaks a run of good ones
        (False, 0, True, False, 1, False),  # unhealthy, good below threshold 2: counts
        (False, 1, True, True, 0, True),  # unhealthy, good reaching threshold: flips
    ],
)
def test_probe_state_table(
    healthy: bool, streak: int, good: bool, expect_healthy: bool, expect_streak: int, flipped: bool
) -> None:
    state = ProbeState(healthy, streak)
    assert state.record(good, healthy_threshold=2, unhealthy_threshold=3) is flipped
    assert (state.healthy, state.streak) == (expect_healthy, expect_streak)


def test_jitter_stays_within_fifteen_percent_and_varies() -> None:
    rng = random.Random(1)
    delays = [next_delay(10.0, rng) for _ in range(500)]
    assert all(10.0 * (1 - JITTER) <= d <= 10.0 * (1 + JITTER) for d in delays)
    assert max(delays) - min(delays) > 2.0


def test_probe_url() -> None:
    cfg = HealthCheckConfig(path="/health?deep=1")
    assert probe_url("http://10.0.0.1:8000/v1", cfg) == "http://10.0.0.1:8000/health?deep=1"
    assert (
        probe_url("https://[::1]:8443", HealthCheckConfig(path="ready", port=9000))
        == "https://[::1]:9000/ready"
    )
    assert probe_url("http://model", cfg) == "http://model/health?deep=1"


def test_health_kinds_are_registered() -> None:
    http = registry.lookup("health", "http")
    passive = registry.lookup("health", "passive")
    assert http is not None and http.impl is HealthChecker and http.doc
    assert passive is not None and passive.impl is PassiveHealth and passive.doc


# --------------------------------------------------------------------------- scheduling on a manual clock


def test_first_probes_are_spread_and_next_ones_jittered() -> None:
    clock = ManualClock()
    checker = HealthChecker(HealthCheckConfig(interval="10s"), clock=clock, rng=random.Random(5))
    backends = [Backend(url=f"http://b{i}") for i in range(50)]
    checker.track(backends, clock.now())
    first = sorted(checker._targets[b.key].due for b in backends)
    assert clock.now() <= first[0] and first[-1] <= clock.now() + JITTER * 10
    assert len(set(first)) == 50  # no two aligned
    clock.advance(1.5)
    due = checker.due(backends, clock.now())
    assert len(due) == 50 and checker.next_due() is None  # all claimed, none double-scheduled
    assert checker.due(backends, clock.now()) == []
    for backend in due:
        checker.record(backend, True, clock.now())
    nxt = [checker._targets[b.key].due - clock.now() for b in backends]
    assert all(8.5 <= d <= 11.5 for d in nxt)


def test_thresholds_flip_backend_health() -> None:
    clock = ManualClock()
    checker = HealthChecker(HealthCheckConfig(unhealthy_threshold=2, healthy_threshold=2), clock=clock)
    backend = Backend(url="http://b")
    checker.track([backend], clock.now())
    assert checker.record(backend, False, clock.now()) is False and backend.healthy
    assert checker.record(backend, False, clock.now()) is True and not backend.healthy
    assert not checker.healthy(backend.key)
    assert checker.record(backend, True, clock.now()) is False and not backend.healthy
    assert checker.record(backend, True, clock.now()) is True and backend.healthy
    assert checker.statistics() == {"backends": 1, "unhealthy": 0}


def test_listener_replaces_writing_backend_health() -> None:
    seen: list[tuple[str, bool, float]] = []
    clock = ManualClock()
    checker = HealthChecker(
        HealthCheckConfig(unhealthy_threshold=1),
        clock=clock,
        listener=lambda b, ok, now: seen.append((b.key, ok, now)),
    )
    backend = Backend(url="http://b")
    checker.track([backend], clock.now())
    checker.record(backend, False, clock.now())
    assert backend.healthy  # the listener decides
    assert not checker.healthy(backend.key)
    assert seen == [("http://b", False, clock.now())]


def test_removed_and_draining_backends_are_not_probed() -> None:
    clock = ManualClock()
    checker = HealthChecker(HealthCheckConfig(), clock=clock)
    keep, drain, gone = Backend(url="http://keep"), Backend(url="http://drain"), Backend(url="http://gone")
    checker.track([keep, drain, gone], clock.now())
    drain.draining = True
    clock.advance(100)
    assert checker.due([keep, drain], clock.now()) == [keep]
    assert checker.record(gone, False, clock.now()) is False  # a late result for a removed backend
    assert checker.healthy(gone.key)


# --------------------------------------------------------------------------- probes against a real server


@pytest.mark.anyio
async def test_probe_against_a_real_server() -> None:
    async with serving() as server, httpx.AsyncClient(trust_env=False) as client:
        cfg = HealthCheckConfig(path="/healthz", hostname="model.internal", headers={"x-probe": "yes"})
        assert await probe(client, server.url, cfg) is True
        head = server.heads[-1].decode().lower()
        assert head.startswith("get /healthz http/1.1")
        assert "host: model.internal" in head and "x-probe: yes" in head
        server.status = 503
        assert await probe(client, server.url, cfg) is False
        assert await probe(client, server.url, HealthCheckConfig(status="500-503")) is True
        assert await probe(client, server.url, HealthCheckConfig(method="HEAD", status="503")) is True
        assert server.heads[-1].startswith(b"HEAD /health ")


@pytest.mark.anyio
async def test_probe_failures_connect_refused_and_timeout() -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        assert await probe(client, f"http://127.0.0.1:{free_port()}", HealthCheckConfig()) is False
        async with serving() as server:
            server.hang = True
            assert await probe(client, server.url, HealthCheckConfig(timeout="100ms")) is False


@pytest.mark.anyio
async def test_checker_loop_takes_a_backend_out_and_back() -> None:
    async with serving() as server:
        backend = Backend(url=server.url)
        cfg = HealthCheckConfig(interval="20ms", timeout="1s", unhealthy_threshold=2, healthy_threshold=2)
        checker = HealthChecker(cfg, rng=random.Random(0))
        async with anyio.create_task_group() as tg:
            tg.start_soon(checker.run, lambda: [backend])
            await eventually(lambda: len(server.heads) >= 2)
            assert backend.healthy
            server.status = 500
            await eventually(lambda: not backend.healthy)
            server.status = 200
            await eventually(lambda: backend.healthy)
            tg.cancel_scope.cancel()
        await checker.aclose()


@pytest.mark.anyio
async def test_check_probes_once_now() -> None:
    async with serving() as server:
        backend = Backend(url=server.url)
        checker = HealthChecker(HealthCheckConfig(unhealthy_threshold=1))
        server.status = 502
        assert await checker.check(backend) is True and not backend.healthy
        server.status = 204
        assert await checker.check(backend) is True and backend.healthy
        await checker.aclose()


# --------------------------------------------------------------------------- passive health


def passive(**options: object) -> PassiveHealth:
    return PassiveHealth(PassiveHealthConfig.model_validate({"max_failures": 3, "window": "10s", **options}))


def test_parse_statuses() -> None:
    assert parse_statuses("500-599") == ((500, 599),)
    assert parse_statuses("429, 502,503-504") == ((429, 429), (502, 502), (503, 504))
    for bad in ("5xx", "600", "503-500", ""):
        with pytest.raises(ValueError):
            parse_statuses(bad)


def test_consecutive_failures_within_window_evict_for_cooldown() -> None:
    clock = ManualClock()
    table = passive(cooldown="30s")
    assert not table.record_failure("a", clock.now())
    clock.advance(1)
    assert not table.record_status("a", 502, clock.now())
    clock.advance(1)
    assert table.record_failure("a", clock.now())
    assert not table.available("a", clock.now())
    assert table.evicted_until("a") == clock.now() + 30
    clock.advance(29.9)
    assert not table.available("a", clock.now())
    clock.advance(0.1)
    assert table.available("a", clock.now())
    assert table.statistics(clock.now()) == {"evicted": 0, "evictions": 1}


def test_a_success_breaks_the_run() -> None:
    clock = ManualClock()
    table = passive()
    table.record_failure("a", clock.now())
    table.record_failure("a", clock.now())
    table.record_status("a", 200, clock.now())
    assert not table.record_failure("a", clock.now())
    assert table.available("a", clock.now())


def test_failures_spread_wider_than_the_window_do_not_evict() -> None:
    clock = ManualClock()
    table = passive()
    for _ in range(10):
        assert not table.record_failure("a", clock.now())
        clock.advance(6)  # three failures span 12 s > 10 s
    assert table.available("a", clock.now())


def test_a_good_probe_readmits_early() -> None:
    clock = ManualClock()
    table = passive(max_failures=1)
    assert table.record_failure("a", clock.now())
    assert not table.available("a", clock.now())
    assert not table.record_failure("a", clock.now())  # late failures while evicted are ignored
    table.record_success("a", clock.now())  # late successes too
    assert not table.available("a", clock.now())
    table.probe_succeeded("a", clock.now())
    assert table.available("a", clock.now())


def test_failure_statuses_are_configurable_and_backends_independent() -> None:
    clock = ManualClock()
    table = passive(max_failures=1, failure_statuses="502,503")
    assert not table.record_status("a", 500, clock.now())
    assert table.record_status("a", 503, clock.now())
    assert table.available("b", clock.now())
    table.forget("a")
    assert table.available("a", clock.now())
    table.probe_succeeded("unknown", clock.now())
