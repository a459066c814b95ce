"""`run --workers 2`: a reload is loaded by every worker or by none (runtime/twophase.py).

Real processes, on asyncio (with uvloop, installed here) and on trio. Which worker answers is
the kernel's choice (SO_REUSEPORT): each check opens 40 connections, so both answer some
(`served_everywhere`), and the admin API's health says the generation of the worker behind
each one (`generations`).
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .stubs import free_ports
from .test_admin_cli import config as admin_config
from .test_cli_run import Running, _listens, run_gateway, wait_for
from .test_supervisor_compile import (
    BACKENDS,
    count,
    generations,
    graph_argument,
    live_workers,
    served_everywhere,
)

__all__ = ["run_gateway"]  # the fixture, used here by name

METRICS = "metrics {\n  prometheus {\n    add_routers_labels = true\n  }\n}\n"


def two_new_entrypoints(first: int, second: int) -> str:
    """A reload that binds two new sockets in each worker, and routes /health everywhere."""
    return f"""
entrypoints "extra-a" {{ address = "127.0.0.1:{first}" }}
entrypoints "extra-b" {{ address = "127.0.0.1:{second}" }}
routers "new" {{
  rule    = "Path(`/health`)"
  service = "llm"
}}
"""


def start(run: Callable[..., Running], path: Path, web: int, admin: int, backend: str) -> Running:
    gateway = run("-c", str(path), "--workers", "2", "--backend", backend)
    workers = wait_for(
        lambda: len(live_workers(gateway.proc)) == 2 and live_workers(gateway.proc), what="workers"
    )
    wait_for(
        lambda: all(_listens(w, web) and _listens(w, admin) for w in workers), what="both workers to listen"
    )
    wait_for(lambda: generations(f"http://127.0.0.1:{admin}") == {1}, what="both workers to serve")
    return gateway


def index_of(worker: psutil.Process) -> int:
    command = worker.cmdline()
    return int(command[command.index("--worker-index") + 1])


def refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def open_descriptors(worker: psutil.Process) -> set[int]:
    return {int(fd) for fd in os.listdir(f"/proc/{worker.pid}/fd")}


@contextmanager
def one_descriptor_left(worker: psutil.Process) -> Iterator[None]:
    """Let `worker` open one more file descriptor, and no second one, until the block ends:
    RLIMIT_NOFILE is a limit of each process, which prlimit(2) sets from outside (psutil).

    A new descriptor takes the lowest free number, and one at or above the soft limit fails with
    EMFILE: with the limit at the lowest free number plus one, reading the published graph
    (opened, read, closed) still works, and the build's second new socket does not."""
    soft, hard = worker.rlimit(psutil.RLIMIT_NOFILE)
    # Idle: the connections of the checks before are closed (a stable set of descriptors).
    used = wait_for(lambda: (u := open_descriptors(worker)) == open_descriptors(worker) and u, what="idle")
    lowest_free = min(set(range(len(used) + 1)) - used)
    worker.rlimit(psutil.RLIMIT_NOFILE, (lowest_free + 1, hard))
    try:
        yield
    finally:
        worker.rlimit(psutil.RLIMIT_NOFILE, (soft, hard))


def reloads(admin: int) -> dict[str, float]:
    """`a3s_gateway_config_reloads_total` by result, as one worker's /metrics says it."""
    with httpx.Client() as client:  # a connection of its own: either worker answers
        text = client.get(f"http://127.0.0.1:{admin}/metrics", auth=("admin", "pw"), timeout=2).text
    return {
        sample.labels["result"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "a3s_gateway_config_reloads_total"
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_reload_one_worker_cannot_build_is_loaded_by_none(
    tmp_path: Path, run_gateway: Callable[..., Running], backend: str
) -> None:
    """The reload binds two new entrypoints; one worker is let open only one more descriptor
    (`one_descriptor_left`: a real, per-process resource, which the other worker and the
    supervisor keep), so its build fails at the second socket, and only there. The other worker
    builds it fine, and must not swap to it: nothing listens on the new ports afterwards, and
    every connection is served generation 1. The failure is reported once, by the supervisor,
    naming the worker and its error; a reload is counted once (a failure, then a success), in
    the metrics every worker reports. The same reload, once the worker has its descriptors back,
    is loaded by both."""
    web, admin, first, second = free_ports(4)
    path = tmp_path / "gw.hcl"
    path.write_text(admin_config(web, admin) + METRICS)
    gateway = start(run_gateway, path, web, admin, backend)
    api = f"http://127.0.0.1:{admin}"
    victim = live_workers(gateway.proc)[0]
    assert served_everywhere(f"http://127.0.0.1:{web}/health", 404)
    assert [reloads(admin) for _ in range(12)] == [{}] * 12  # none yet

    path.write_text(admin_config(web, admin) + METRICS + two_new_entrypoints(first, second))
    with one_descriptor_left(victim):
        gateway.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: gateway.logged("reload failed"), what="the reload to fail")
    failures = [line for line in list(gateway.lines) if "reload failed" in line]
    assert len(failures) == 1, failures
    assert "the workers keep serving generation 1" in failures[0]
    assert f"worker {index_of(victim)} (pid {victim.pid}): " in failures[0]
    assert "Too many open files" in failures[0]
    # No worker swapped: the one that built it dropped it, new sockets and all.
    assert refused(first) and refused(second)
    assert generations(api) == {1}
    assert served_everywhere(f"http://127.0.0.1:{web}/health", 404)
    assert count(gateway, "reloaded (generation 2)") == 0
    assert [reloads(admin) for _ in range(12)] == [{"failure": 1.0}] * 12

    # The same files again: both workers load them, as generation 2 (the failed one took none).
    gateway.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: count(gateway, "reloaded (generation 2)") == 2, what="both workers to reload")
    assert generations(api) == {2}
    assert served_everywhere(f"http://127.0.0.1:{web}/health")
    assert served_everywhere(f"http://127.0.0.1:{first}/health")
    assert [reloads(admin) for _ in range(12)] == [{"failure": 1.0, "success": 1.0}] * 12
    # The admin API's health says the gateway's reload count, whichever worker answers.
    counts = {
        httpx.get(f"{api}/api/gateway/health", auth=("admin", "pw"), timeout=2).json()["reloads"]
        for _ in range(40)
    }
    assert counts == {1}
    gateway.proc.send_signal(signal.SIGTERM)
    assert gateway.proc.wait(timeout=30) == 0
    assert "Traceback" not in gateway.stderr()


def child_started_after(supervisor_pid: int, before: set[int]) -> psutil.Process:
    """The supervisor's first child not in `before` that runs the worker's program. Not one it
    has only forked: stopped before its exec, it would hold the supervisor's spawn, which waits
    for the exec, and with it the supervisor (this test failed so once in CI, on trio)."""
    supervisor = psutil.Process(supervisor_pid)

    def started() -> psutil.Process | None:
        for child in supervisor.children():
            if child.pid not in before and "a3s_gateway.runtime.workers" in child.cmdline():
                return child
        return None

    return wait_for(started, timeout=30, what="a restart")


@pytest.mark.parametrize("backend", BACKENDS)
def test_workers_killed_or_started_during_a_reload_end_on_the_committed_generation(
    tmp_path: Path, run_gateway: Callable[..., Running], backend: str
) -> None:
    """A reload is held in its prepare phase by stopping one worker (SIGSTOP: it cannot answer).

    1. The other worker prepares it and waits; the stopped one is killed. It never answered:
       the reload is aborted everywhere, and its replacement starts from generation 1, the
       committed one, never from the aborted candidate (whose file is gone).
    2. A worker started (and held, SIGSTOP, before it could join) when a reload begins is not
       one of the workers that reload waits for. It joins once the reload has committed, from the
       generation it was started with, and is brought to the committed one first."""
    web, admin = free_ports(2)
    path = tmp_path / "gw.hcl"
    path.write_text(admin_config(web, admin))
    gateway = start(run_gateway, path, web, admin, backend)
    api = f"http://127.0.0.1:{admin}"
    stopped, preparing = live_workers(gateway.proc)
    graphs = Path(graph_argument(stopped)).parent
    killed = f"worker {index_of(stopped)} (pid {stopped.pid}) exited during the reload"

    path.write_text(admin_config(web, admin) + two_new_entrypoints(*free_ports(2)))
    stopped.send_signal(signal.SIGSTOP)
    gateway.proc.send_signal(signal.SIGHUP)
    wait_for(
        lambda: gateway.logged(f"worker {index_of(preparing)} prepared generation 2"), what="one prepared"
    )
    assert (graphs / "next-000000002.pickle").exists()  # the candidate, named for no worker to start from
    stopped.kill()
    wait_for(lambda: gateway.logged("reload failed"), what="the abort")
    assert count(gateway, killed) == 1
    assert sorted(p.name for p in graphs.iterdir()) == ["graph-000000001.pickle"]
    restarted = wait_for(
        lambda: [w for w in live_workers(gateway.proc) if w.pid != preparing.pid], what="the restart"
    )[0]
    assert Path(graph_argument(restarted)).name == "graph-000000001.pickle"
    wait_for(lambda: _listens(restarted, web), what="the restarted worker to listen")
    wait_for(lambda: count(gateway, f"(pid {restarted.pid}) joined at generation 1") == 1, what="its join")
    assert generations(api) == {1}
    assert served_everywhere(f"http://127.0.0.1:{web}/health", 404)
    assert count(gateway, "reloaded (generation 2)") == 0

    # 2. One worker held while it starts, the other stopped: the reload waits for the latter only.
    before = {w.pid for w in live_workers(gateway.proc)}
    restarted.kill()
    late = child_started_after(gateway.proc.pid, before)
    late.send_signal(signal.SIGSTOP)  # it takes ~1 s to serve, so it has not joined yet
    preparing.send_signal(signal.SIGSTOP)
    gateway.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: gateway.logged("generation 2 compiled: 1 workers prepare it"), what="the reload")
    late.send_signal(signal.SIGCONT)  # it serves generation 1 and waits to join
    wait_for(lambda: _listens(late, web), what="the late worker to listen")
    preparing.send_signal(signal.SIGCONT)
    wait_for(lambda: gateway.logged("generation 2 loaded by 1 workers"), what="the commit")
    wait_for(lambda: count(gateway, "reloaded (generation 2)") == 2, what="both workers at generation 2")
    assert count(gateway, f"(pid {late.pid}) started at generation 1: bringing it to generation 2") == 1
    assert generations(api) == {2}
    assert served_everywhere(f"http://127.0.0.1:{web}/health")
    gateway.proc.send_signal(signal.SIGTERM)
    assert gateway.proc.wait(timeout=30) == 0
    assert "Traceback" not in gateway.stderr()
