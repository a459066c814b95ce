"""`run --workers 2`: the supervisor compiles, once per reload, and hands the graph to the workers.

Real processes on both backends: a bad configuration is reported once (at start, before any
worker; at a reload, with no worker signalled and the old graph serving on both); a good one
reaches both workers as the same generation; a worker killed after a reload comes back with the
newest graph, not with the files (which are bad on disk by then); the admin API's reload answers
422 with `compile --check`'s diagnostics, or 200, with the supervisor compiling in both cases;
and all of it with a dynamic provider configured (whose source is lost here: the supervisor runs
it, tests/test_supervisor_providers.py drives one).
"""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .stubs import free_ports
from .test_admin_cli import cli
from .test_admin_cli import config as admin_config
from .test_cli_run import GATEWAY, Running, _listens, config, run_gateway, wait_for
from .test_metrics_workers import METRICS

__all__ = ["run_gateway"]  # the fixture, used here by name

BACKENDS = ["asyncio", "trio"]
HEALTH_ROUTE = 'routers "new" {\n  rule = "Path(`/health`)"\n  service = "llm"\n}\n'


def served_everywhere(url: str, expected: int = 200) -> bool:
    """Each request opens a new connection, which the kernel gives to either worker
    (SO_REUSEPORT): 40 in a row on one worker is a chance of 2^-39."""
    return all(httpx.get(url, timeout=2).status_code == expected for _ in range(40))


def count(gateway: Running, text: str) -> int:
    return sum(text in line for line in list(gateway.lines))


def live_workers(proc: subprocess.Popen[str]) -> list[psutil.Process]:
    """The supervisor's running workers. A child it has just forked and that has not yet exec'd
    the worker's program still shows the supervisor's command line: not a worker yet (a test
    reading its `--graph` then found none)."""
    workers = []
    for child in psutil.Process(proc.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "a3s_gateway.runtime.workers" in child.cmdline():
                workers.append(child)
        except psutil.Error:  # gone meanwhile
            continue
    return workers


def start_workers(start: Callable[..., Running], path: Path, port: int, backend: str) -> Running:
    """`run --workers 2` on `path`, once both workers listen on `port`."""
    gateway = start("--config", str(path), "--workers", "2", "--backend", backend)
    workers = wait_for(
        lambda: len(live_workers(gateway.proc)) == 2 and live_workers(gateway.proc), what="workers"
    )
    wait_for(lambda: all(_listens(w, port) for w in workers), what="both workers to listen")
    return gateway


def graph_argument(worker: psutil.Process) -> str:
    command = worker.cmdline()
    return command[command.index("--graph") + 1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_bad_config_at_start_is_reported_once_and_no_worker_starts(
    tmp_path: Path, run_gateway: Callable[..., Running], backend: str
) -> None:
    path = tmp_path / "bad.hcl"
    path.write_text(config(free_ports(1)[0]).replace('service = "llm"', 'service = "missing"'))
    gateway = run_gateway("--config", str(path), "--workers", "2", "--backend", backend)
    assert gateway.proc.wait(timeout=30) == 1
    stderr = gateway.stderr()
    assert stderr.count("unknown service 'missing'") == 1, stderr
    assert stderr.count(f"{path}:8:3: error:") == 1 and "started (pid" not in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_reloads_are_compiled_once_and_a_restarted_worker_serves_the_newest_graph(
    tmp_path: Path, run_gateway: Callable[..., Running], backend: str
) -> None:
    (port,), path = free_ports(1), tmp_path / "gw.hcl"
    path.write_text(config(port))
    gateway = start_workers(run_gateway, path, port, backend)
    proc = gateway.proc
    workers = live_workers(proc)
    health = f"http://127.0.0.1:{port}/health"
    assert served_everywhere(health, 404)

    # The graph is handed over privately: a 0600 file in the supervisor's 0700 directory.
    published = Path(graph_argument(workers[0]))
    assert published.name == "graph-000000001.pickle"
    assert stat.S_IMODE(published.stat().st_mode) == 0o600
    assert stat.S_IMODE(published.parent.parent.stat().st_mode) == 0o700

    # A good reload: one compile, the same generation on both workers.
    path.write_text(config(port, extra=True))
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: count(gateway, "reloaded (generation 2)") == 2, what="both workers to reload")
    assert served_everywhere(health)
    assert count(gateway, "generation 2 compiled") == 1

    # A bad reload: logged once, no worker signalled, the old graph serving on both.
    path.write_text(config(port, extra=True).replace('service = "probe"', 'service = "missing"'))
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: gateway.logged("configuration rejected"), what="the rejection")
    assert served_everywhere(health)
    # The next good reload is generation 3 (the rejected one took no number), and the workers
    # were asked to prepare a generation twice in all.
    path.write_text(config(port))
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: count(gateway, "reloaded (generation 3)") == 2, what="both workers to reload")
    assert served_everywhere(health, 404)
    assert count(gateway, "workers prepare it") == 2
    assert count(gateway, "configuration rejected") == 1 and count(gateway, "unknown service 'missing'") == 1

    # The files go bad on disk; a worker killed now comes back with generation 3, not them.
    path.write_text(config(port).replace("load_balancer", "load_balancr"))
    before = live_workers(proc)
    victim = before[0]
    victim.kill()
    victim.wait(timeout=10)

    def replaced() -> list[psutil.Process]:
        now = live_workers(proc)
        return now if len(now) == 2 and victim.pid not in {w.pid for w in now} else []

    restarted = [w for w in wait_for(replaced, what="a restart") if w.pid not in {b.pid for b in before}]
    assert len(restarted) == 1
    assert all(Path(graph_argument(w)).name == "graph-000000003.pickle" for w in restarted)
    wait_for(lambda: all(_listens(w, port) for w in live_workers(proc)), what="the new worker to listen")
    assert served_everywhere(f"http://127.0.0.1:{port}/v1/models")
    assert served_everywhere(health, 404)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    stderr = gateway.stderr()
    assert "load_balancr" not in stderr and "Traceback" not in stderr


def generations(api: str) -> set[int]:
    """The generation each of 40 new connections' worker serves (both workers, see above)."""
    return {
        httpx.get(f"{api}/api/gateway/health", auth=("admin", "pw"), timeout=2).json()["generation"]
        for _ in range(40)
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_admin_reload_is_compiled_by_the_supervisor(
    tmp_path: Path, run_gateway: Callable[..., Running], backend: str
) -> None:
    web, admin = free_ports(2)
    path = tmp_path / "gw.hcl"
    path.write_text(admin_config(web, admin))
    gateway = run_gateway("-c", str(path), "--workers", "2", "--backend", backend)
    api = f"http://127.0.0.1:{admin}"
    wait_for(lambda: generations(api) == {1}, what="both workers to serve")

    path.write_text(admin_config(web, admin) + HEALTH_ROUTE)
    done = httpx.post(f"{api}/api/gateway/reload", auth=("admin", "pw"), timeout=60)
    assert done.status_code == 200 and done.json()["generation"] == 2, done.text
    assert "router:new" in done.json()["changes"]["added"]
    wait_for(lambda: generations(api) == {2}, what="both workers at generation 2")
    assert served_everywhere(f"http://127.0.0.1:{web}/health")
    assert count(gateway, "generation 2 compiled") == 1  # one compile, in the supervisor

    path.write_text(admin_config(web, admin, service="lm") + HEALTH_ROUTE)
    rejected = httpx.post(f"{api}/api/gateway/reload", auth=("admin", "pw"), timeout=60)
    assert rejected.status_code == 422, rejected.text
    check = subprocess.run(
        [*GATEWAY, "compile", "--check", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    expected = json.loads(check.stdout)
    assert {k: v for k, v in rejected.json().items() if k != "status"} == expected
    assert expected["diagnostics"] and "unknown service 'lm'" in check.stdout
    assert generations(api) == {2}  # the old graph keeps serving on both
    assert served_everywhere(f"http://127.0.0.1:{web}/health")
    assert count(gateway, "configuration rejected") == 1
    assert count(gateway, "workers prepare it") == 1  # the good reload's only

    # The CLI says the same.
    refused = cli("reload", "--api", api, "--user", "admin:pw")
    assert refused.returncode == 1 and "unknown service 'lm'" in refused.stderr
    gateway.proc.send_signal(signal.SIGTERM)
    assert gateway.proc.wait(timeout=30) == 0
    assert "Traceback" not in gateway.stderr()


def test_a_worker_whose_graph_cannot_be_read_exits_1_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "gw.hcl"
    path.write_text(config(free_ports(1)[0]))
    (tmp_path / "graph-000000001.pickle").write_bytes(b"not a pickle")
    graph = tmp_path / "graph-000000001.pickle"
    command = [
        sys.executable,
        "-m",
        "a3s_gateway.runtime.workers",
        "--config",
        str(path),
        "--graph",
        str(graph),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "cannot read its graph" in done.stderr and "Traceback" not in done.stderr


def test_a_worker_started_without_its_graph_exits_2_with_its_usage(tmp_path: Path) -> None:
    """Only the supervisor starts workers, always with `--graph`: a worker never compiles the
    files itself, so one started by hand without a graph is refused, not run on the files."""
    path = tmp_path / "gw.hcl"
    path.write_text(config(free_ports(1)[0]))
    command = [sys.executable, "-m", "a3s_gateway.runtime.workers", "--config", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--graph" in done.stderr and "Traceback" not in done.stderr


def dns_provider(resolver: int) -> str:
    """A dns provider whose resolver never answers: its source is lost, and the files serve alone."""
    return f"""
providers {{
  dns {{
    resolvers = ["127.0.0.1:{resolver}"]
    timeout   = "0.2s"
    services  = {{ api = {{ servers = [{{ url = "http://api.invalid:8000" }}] }} }}
  }}
}}
"""


def dynamic(port: int, resolver: int, service: str = "llm", *, extra: bool = False) -> str:
    """`config(port)` with a dns provider whose source is lost (`dns_provider`)."""
    return config(port, extra=extra).replace('service = "llm"', f'service = "{service}"') + dns_provider(
        resolver
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_with_a_dynamic_provider_the_supervisor_compiles_and_rejects_once(
    tmp_path: Path, run_gateway: Callable[..., Running], backend: str
) -> None:
    port, resolver = free_ports(2)
    path = tmp_path / "gw.hcl"
    path.write_text(dynamic(port, resolver))
    gateway = start_workers(run_gateway, path, port, backend)
    proc = gateway.proc
    # The provider's source is lost: the files serve alone, on both workers.
    assert served_everywhere(f"http://127.0.0.1:{port}/v1/models")

    # A syntax error, then an error only a compile finds: each rejected once, by the supervisor,
    # and no worker hears of either.
    path.write_text(dynamic(port, resolver) + "garbage {{{\n")
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: count(gateway, "the workers keep serving generation 1") == 1, what="the rejection")
    path.write_text(dynamic(port, resolver, service="missing"))
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: count(gateway, "the workers keep serving generation 1") == 2, what="the rejection")
    assert count(gateway, "unknown service 'missing'") == 1
    assert served_everywhere(f"http://127.0.0.1:{port}/v1/models")
    # A good one: compiled once, generation 2 on both workers (no number was taken by the others).
    path.write_text(dynamic(port, resolver, extra=True))
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: count(gateway, "reloaded (generation 2)") == 2, what="both workers to reload")
    assert served_everywhere(f"http://127.0.0.1:{port}/health")
    assert count(gateway, "garbage") == 1  # the syntax error's one block
    assert count(gateway, "generation 2 compiled") == 1
    assert count(gateway, "workers prepare it") == 1  # the good reload's only
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert "Traceback" not in gateway.stderr()


def test_the_admin_reload_with_a_dynamic_provider_is_compiled_by_the_supervisor(
    tmp_path: Path, run_gateway: Callable[..., Running]
) -> None:
    web, admin, resolver = free_ports(3)
    path = tmp_path / "gw.hcl"
    path.write_text(admin_config(web, admin) + dns_provider(resolver))
    gateway = run_gateway("-c", str(path), "--workers", "2")
    api = f"http://127.0.0.1:{admin}"
    wait_for(lambda: generations(api) == {1}, what="both workers to serve")

    path.write_text(admin_config(web, admin) + HEALTH_ROUTE + dns_provider(resolver))
    done = httpx.post(f"{api}/api/gateway/reload", auth=("admin", "pw"), timeout=60)
    assert done.status_code == 200 and done.json()["generation"] == 2, done.text
    wait_for(lambda: generations(api) == {2}, what="both workers at generation 2")
    assert served_everywhere(f"http://127.0.0.1:{web}/health")

    path.write_text(admin_config(web, admin, service="lm") + dns_provider(resolver))
    rejected = httpx.post(f"{api}/api/gateway/reload", auth=("admin", "pw"), timeout=60)
    assert rejected.status_code == 422 and "unknown service 'lm'" in rejected.text, rejected.text
    assert generations(api) == {2}
    assert count(gateway, "generation 2 compiled") == 1 and count(gateway, "configuration rejected") == 1
    gateway.proc.send_signal(signal.SIGTERM)
    assert gateway.proc.wait(timeout=30) == 0
    assert "Traceback" not in gateway.stderr()


def reload_failures(api: int) -> float | None:
    """`a3s_gateway_config_reloads_total{result="failure"}` as one worker's /metrics says it."""
    with httpx.Client() as client:  # a connection of its own: either worker answers
        text = client.get(f"http://127.0.0.1:{api}/metrics", timeout=2).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "a3s_gateway_config_reloads_total" and sample.labels["result"] == "failure":
                return sample.value
    return None


def test_a_rejected_reload_is_counted_once_in_the_workers_metrics(
    tmp_path: Path, run_gateway: Callable[..., Running]
) -> None:
    port, api = free_ports(2)
    path = tmp_path / "gw.hcl"
    path.write_text(config(port) + METRICS % api)
    gateway = start_workers(run_gateway, path, port, "asyncio")
    wait_for(lambda: reload_failures(api) in (None, 0.0), what="/metrics")
    path.write_text(config(port).replace('service = "llm"', 'service = "missing"') + METRICS % api)
    gateway.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: gateway.logged("configuration rejected"), what="the rejection")
    # The supervisor counted it in the workers' shared directory: every scrape, whichever
    # worker answers it, says one failure (each worker counting it would say two).
    assert [reload_failures(api) for _ in range(12)] == [1.0] * 12
    gateway.proc.send_signal(signal.SIGTERM)
    assert gateway.proc.wait(timeout=30) == 0
