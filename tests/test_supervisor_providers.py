"""`run --workers 2` with a dynamic provider: the supervisor runs it, compiles its fragments with
the files once per change, and hands every worker the same generation (runtime/publisher.py).

Real processes on both backends, with the discovery provider asking a seed server the test
runs (an HTTP endpoint whose every poll the test sees): a change reaches both workers as the same
generation; the seed is polled by the supervisor alone; a fragment that does not compile is
rejected once, in the supervisor, and both workers keep serving (and report the provider's
status, which the supervisor shares with them); a SIGHUP compiles the files
with the fragments the workers serve; a worker killed comes back on the newest generation; and
no worker ever imported the provider or the compiler's pipeline. And with redis-server killed
and restarted, both workers keep the last generation meanwhile, and say the source is lost.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from a3s_gateway.runtime.providers import MirroredProviders, ProviderSet, ProviderStatus, write_status

from .providers.kv_servers import RedisServer
from .providers.test_discovery import Seed, seed_server
from .providers.test_redis import API as REDIS_API
from .providers.test_redis import CONFIG as REDIS_CONFIG
from .stubs import free_ports
from .test_cli_run import Running, _listens, config, run_gateway, wait_for
from .test_supervisor_compile import HEALTH_ROUTE, count, graph_argument, live_workers, start_workers
from .test_supervisor_compile import served_everywhere as everywhere
from .test_worker_imports import COMPILE_ONLY, SITECUSTOMIZE

__all__ = ["run_gateway"]  # the fixture, used here by name

BACKENDS = ["asyncio", "trio"]
PROVIDER_MODULE = "a3s_gateway.stdlib.providers.discovery"


@dataclass
class PolledSeed(Seed):
    """A seed that knows the pid of the process behind each poll of its document."""

    pollers: set[int] = field(default_factory=set)
    polls: int = 0

    def polled(self, client: tuple[str, int]) -> None:
        port = int(self.url.rsplit(":", 1)[1])
        self.polls += 1
        self.pollers |= {
            -1 if conn.pid is None else conn.pid
            for conn in psutil.net_connections("tcp")
            if conn.laddr and conn.raddr and (conn.laddr.port, conn.raddr.port) == (client[1], port)
        } or {-1}


def probe(prefix: str) -> PolledSeed:
    seed = PolledSeed("one")
    seed.describe("probe", [{"rule": f"PathPrefix(`{prefix}`)"}])
    return seed


def with_discovery(port: int, seed: PolledSeed, *, extra: str = "") -> str:
    return (
        config(port)
        + extra
        + f"""
providers {{
  throttle = "0.1s"
  discovery {{
    seeds    = ["{seed.url}"]
    interval = "0.2s"
    timeout  = "2s"
  }}
}}
"""
    )


def provider_states(admin: int, provider: str = "discovery") -> set[str]:
    """The provider's state as each of 40 new connections' worker reports it (both workers:
    served_everywhere says why)."""
    url = f"http://127.0.0.1:{admin}/api/gateway/health"
    return {httpx.get(url, timeout=2).json()["providers"][provider]["state"] for _ in range(40)}


def served(port: int, path: str, expected: int = 200) -> bool:
    return everywhere(f"http://127.0.0.1:{port}{path}", expected)


def modules_at_exit(dumps: Path, pid: int) -> set[str]:
    return set((dumps / f"{pid}.txt").read_text().split())


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_supervisor_runs_the_providers_and_every_worker_serves_its_generations(
    tmp_path: Path, run_gateway: Callable[..., Running], backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every process dumps its modules when it exits (test_worker_imports.py).
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    dumps = tmp_path / "modules"
    dumps.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    monkeypatch.setenv("A3S_TEST_MODULES_DIR", str(dumps))

    with seed_server(probe("/a")) as seed:
        (port, admin), path = free_ports(2), tmp_path / "gw.hcl"
        api = f'api {{\n  address = "127.0.0.1:{admin}"\n}}\n'
        path.write_text(with_discovery(port, seed, extra=api))
        gateway = start_workers(run_gateway, path, port, backend)
        proc = gateway.proc
        # Generation 1 waited for the provider's first answer: both workers start with its route.
        assert all(Path(graph_argument(w)).name == "graph-000000001.pickle" for w in live_workers(proc))
        assert served(port, "/a/x") and served(port, "/b/x", 404)
        workers = {w.pid for w in live_workers(proc)}

        # A change at the source: one compile, the same generation loaded by both workers.
        seed.describe("probe", [{"rule": "PathPrefix(`/b`)"}])
        wait_for(lambda: count(gateway, "reloaded (generation 2)") == 2, what="both workers to reload")
        assert served(port, "/b/x") and served(port, "/a/x", 404)
        assert count(gateway, "generation 2 compiled") == 1

        # A fragment that does not compile: rejected once, in the supervisor; no worker hears of it.
        seed.describe("probe", [{"rule": "PathPrefix(`/c`)", "middlewares": ["missing"]}])
        wait_for(lambda: gateway.logged("provider discovery: configuration rejected"), what="the rejection")
        assert served(port, "/b/x") and served(port, "/c/x", 404)
        # Both workers report the supervisor's providers: the status it shares with them.
        wait_for(lambda: provider_states(admin) == {"rejected"}, what="both workers to say so")
        seed.describe("probe", [{"rule": "PathPrefix(`/c`)"}])
        wait_for(lambda: count(gateway, "reloaded (generation 3)") == 2, what="both workers to reload")
        assert served(port, "/c/x") and served(port, "/b/x", 404)
        wait_for(lambda: provider_states(admin) == {"ok"}, what="both workers to say so")
        assert count(gateway, "configuration rejected") == 1 and count(gateway, "'missing'") == 1
        assert count(gateway, "workers prepare it") == 2  # generations 2 and 3 only

        # A reload of the files compiles them with the fragments the workers serve.
        path.write_text(
            with_discovery(port, seed, extra=api + HEALTH_ROUTE.replace("llm", "probe@discovery"))
        )
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: count(gateway, "reloaded (generation 4)") == 2, what="both workers to reload")
        assert served(port, "/health") and served(port, "/c/x")

        # A worker killed comes back on the newest generation.
        victim = psutil.Process(next(iter(workers)))
        victim.kill()
        victim.wait(timeout=10)

        def replaced() -> list[psutil.Process]:
            now = live_workers(proc)
            return now if len(now) == 2 and victim.pid not in {w.pid for w in now} else []

        restarted = [w for w in wait_for(replaced, what="a restart") if w.pid not in workers]
        assert [Path(graph_argument(w)).name for w in restarted] == ["graph-000000004.pickle"]
        wait_for(lambda: all(_listens(w, port) for w in live_workers(proc)), what="the new worker to listen")
        assert served(port, "/health") and served(port, "/c/x")

        # The seed was polled all along, by the supervisor alone.
        assert seed.polls > 4 and seed.pollers == {proc.pid}
        survivors = {w.pid for w in live_workers(proc)}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert "Traceback" not in gateway.stderr()
    # No worker ran the provider or compiled; the supervisor did both.
    assert {PROVIDER_MODULE, *COMPILE_ONLY} <= modules_at_exit(dumps, proc.pid)
    for pid in survivors:
        modules = modules_at_exit(dumps, pid)
        assert "a3s_gateway.runtime.gateway" in modules  # the dump is a serving worker's
        assert [name for name in (PROVIDER_MODULE, *COMPILE_ONLY) if name in modules] == []


def test_a_start_whose_files_do_not_compile_with_the_providers_is_reported_once(
    tmp_path: Path, run_gateway: Callable[..., Running]
) -> None:
    with seed_server(probe("/a")) as seed:
        (port,), path = free_ports(1), tmp_path / "gw.hcl"
        path.write_text(with_discovery(port, seed, extra=HEALTH_ROUTE.replace("llm", "missing@discovery")))
        gateway = run_gateway("--config", str(path), "--workers", "2")
        assert gateway.proc.wait(timeout=60) == 1
    stderr = gateway.stderr()
    assert stderr.count("unknown service 'missing@discovery'") == 1, stderr
    assert "started (pid" not in stderr and "Traceback" not in stderr


def connected_to(process: psutil.Process, port: int) -> bool:
    return any(c.raddr and c.raddr.port == port for c in process.net_connections("tcp"))


def test_a_provider_whose_source_goes_down_leaves_every_worker_on_the_last_generation(
    tmp_path: Path, run_gateway: Callable[..., Running]
) -> None:
    server = RedisServer(notify=True)
    server.start()
    try:
        server.client.mset(REDIS_API)
        web, admin = free_ports(2)
        path = tmp_path / "gw.hcl"
        api = f'api {{\n  address = "127.0.0.1:{admin}"\n}}\n'
        path.write_text(REDIS_CONFIG.format(port=web, redis=server.port) + api)
        gateway = start_workers(run_gateway, path, web, "asyncio")
        assert served(web, "/api/health") and served(web, "/health", 404)
        # The supervisor alone watches the source.
        proc = psutil.Process(gateway.proc.pid)
        wait_for(lambda: connected_to(proc, server.port), what="the supervisor's connection to redis")
        assert not any(connected_to(w, server.port) for w in live_workers(gateway.proc))

        server.stop()
        wait_for(lambda: provider_states(admin, "redis") == {"lost"}, what="both workers to say so")
        assert served(web, "/api/health")  # the last generation, on both workers

        server.start()  # empty: no persistence
        server.client.mset({**REDIS_API, "a3s/http/routers/new/rule": "Path(`/health`)"})
        server.client.set("a3s/http/routers/new/service", "llm")
        wait_for(lambda: served(web, "/health"), what="the new route on both workers")
        wait_for(lambda: provider_states(admin, "redis") == {"ok"}, what="both workers to say so")
        assert served(web, "/api/health")
        assert not any(connected_to(w, server.port) for w in live_workers(gateway.proc))
        gateway.proc.send_signal(signal.SIGTERM)
        assert gateway.proc.wait(timeout=30) == 0
        assert "Traceback" not in gateway.stderr()
    finally:
        server.stop()


def test_a_workers_mirror_reads_the_status_the_supervisor_writes(tmp_path: Path) -> None:
    async def apply(fragments: object) -> None:
        raise AssertionError("not applied here")

    providers = ProviderSet(apply, lambda *_: None, {})
    path = str(tmp_path / "providers.json")
    mirror = MirroredProviders(path)
    assert mirror.health() == {} and mirror.last_errors() == []  # nothing written yet

    providers.status["etcd"] = ProviderStatus(state="lost", last_error="source lost", last_error_at=1.5)
    write_status(path, providers)
    saved = {"state": "lost", "routers": 0, "last_error": "source lost", "last_error_at": 1.5}
    assert mirror.health() == providers.health() == {"etcd": {**saved, "updates": 0, "accepted": 0}}
    assert mirror.last_errors() == [("etcd", 1.5)]

    providers.status["etcd"].state = "ok"
    write_status(path, providers)  # a new file, renamed over: the mirror reads it again
    assert mirror.health()["etcd"]["state"] == "ok"
    Path(path).write_text("not json")
    assert mirror.health() == {}
