"""`a3s-gateway run` as a subprocess: serving, SIGHUP reload, SIGTERM drain, errors, workers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from .stubs import free_port

# The console script installed next to this interpreter, exactly what `make run` starts.
GATEWAY = [str(Path(sys.executable).with_name("a3s-gateway"))]


def config(port: int, *, extra: bool = False, delay: float = 0.01) -> str:
    text = f"""
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
    if extra:
        text += """
routers "health" {
  rule    = "Path(`/health`)"
  service = "probe"
}

services "probe" {
  load_balancer {
    servers = [{ url = "demo://probe" }]
  }
}
"""
    return text


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll `condition` until it returns a truthy value (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
            if value:
                return value
        except (httpx.HTTPError, OSError, psutil.Error):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def status(port: int, path: str) -> int:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code


def chat(stream: bool = False, tokens: int = 3) -> dict[str, Any]:
    return {
        "model": "m",
        "stream": stream,
        "max_tokens": tokens,
        "messages": [{"role": "user", "content": "hi"}],
    }


class Running:
    """A gateway subprocess whose stderr is collected line by line as it is written."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [*GATEWAY, "run", *args], stderr=subprocess.PIPE, text=True, cwd=cwd, start_new_session=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def logged(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def stderr(self) -> str:
        self._reader.join(timeout=10)
        return "".join(self.lines)


@pytest.fixture
def run_gateway(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(*args: str) -> Running:
        started.append(Running(list(args), tmp_path))
        return started[-1]

    yield start
    for gateway in started:
        if gateway.proc.poll() is None:
            os.killpg(gateway.proc.pid, signal.SIGKILL)
            gateway.proc.wait()


def test_run_serves_reloads_on_sighup_and_drains_on_sigterm(
    tmp_path: Path, run_gateway: Callable[..., Running]
) -> None:
    port, path = free_port(), tmp_path / "gw.hcl"
    path.write_text(config(port, delay=0.02))
    gateway = run_gateway("--config", str(path))
    proc = gateway.proc
    wait_for(lambda: status(port, "/v1/models") == 200, what="the gateway to serve")
    assert status(port, "/health") == 404  # not routed yet

    path.write_text(config(port, extra=True, delay=0.02))
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: status(port, "/health") == 200, what="the reload")

    # A config with errors on SIGHUP is rejected; the running one keeps serving.
    path.write_text(config(port).replace('service = "llm"', 'service = "missing"'))
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: gateway.logged("configuration rejected"), what="the rejection")
    assert status(port, "/health") == 200

    with httpx.stream(
        "POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=chat(True, 20)
    ) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: _refused(port), what="the listener to close")
        rest = [line for line in lines if line]
    assert rest[-1] == "data: [DONE]" and len(rest) == 20 + 2
    assert proc.wait(timeout=15) == 0
    stderr = gateway.stderr()
    assert "missing" in stderr and "gateway stopped" in stderr
    assert "Traceback" not in stderr


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_a_bad_config_exits_1_with_its_location_and_no_traceback(
    tmp_path: Path, run_gateway: Callable[..., Running]
) -> None:
    path = tmp_path / "bad.hcl"
    path.write_text(config(free_port()).replace("load_balancer", "load_balancr"))
    gateway = run_gateway("--config", str(path))
    assert gateway.proc.wait(timeout=30) == 1
    stderr = gateway.stderr()
    assert f"{path}:" in stderr and "load_balancr" in stderr
    line_col = stderr.split(f"{path}:", 1)[1].split(":")[:2]
    assert all(part.isdigit() for part in line_col), stderr
    assert "Traceback" not in stderr


def test_trio_backend_serves(tmp_path: Path, run_gateway: Callable[..., Running]) -> None:
    port, path = free_port(), tmp_path / "gw.hcl"
    path.write_text(config(port))
    proc = run_gateway("--config", str(path), "--backend", "trio").proc
    wait_for(lambda: status(port, "/v1/models") == 200, what="the gateway to serve")
    response = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=chat())
    assert json.loads(response.text)["object"] == "chat.completion"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=15) == 0


def test_workers_serve_and_survive_a_killed_worker(
    tmp_path: Path, run_gateway: Callable[..., Running]
) -> None:
    port, path = free_port(), tmp_path / "gw.hcl"
    path.write_text(config(port))
    proc = run_gateway("--config", str(path), "--workers", "2").proc
    supervisor = psutil.Process(proc.pid)

    def workers() -> list[psutil.Process]:
        return [p for p in supervisor.children() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    first = wait_for(lambda: len(workers()) == 2 and workers(), what="two workers")
    wait_for(lambda: status(port, "/v1/models") == 200, what="the workers to serve")

    # Both workers accept: new connections spread over them (SO_REUSEPORT).
    # Each worker also runs its own demo backend: wait for the gateway port specifically.
    def listens(worker: psutil.Process) -> bool:
        return any(
            c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in worker.net_connections("tcp")
        )

    wait_for(lambda: all(listens(w) for w in first), what="both workers to listen on the port")

    victim = first[0]
    victim.kill()
    victim.wait(timeout=10)  # its listening socket is gone once the supervisor has reaped it
    # Traffic keeps flowing through the surviving worker...
    for _ in range(20):
        assert status(port, "/v1/models") == 200
    # ...and the supervisor replaces the dead one.
    wait_for(lambda: len(workers()) == 2 and victim.pid not in {w.pid for w in workers()}, what="a restart")
    wait_for(lambda: status(port, "/v1/models") == 200, what="serving after the restart")

    last = workers()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in last)


def test_watch_reloads_when_the_file_changes(tmp_path: Path, run_gateway: Callable[..., Running]) -> None:
    port, path = free_port(), tmp_path / "gw.hcl"
    path.write_text(config(port))
    gateway = run_gateway("--config", str(path), "--watch")
    wait_for(lambda: status(port, "/v1/models") == 200, what="the gateway to serve")
    wait_for(lambda: gateway.logged("watching"), what="the watcher")
    # Saved the way editors do: a new file renamed over the old one.
    (tmp_path / "gw.hcl.tmp").write_text(config(port, extra=True))
    (tmp_path / "gw.hcl.tmp").replace(path)
    wait_for(lambda: status(port, "/health") == 200, what="the reload")
    gateway.proc.send_signal(signal.SIGTERM)
    assert gateway.proc.wait(timeout=15) == 0


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["single", "workers"])
def test_sigusr1_reopens_the_access_log(
    tmp_path: Path, run_gateway: Callable[..., Running], workers: list[str]
) -> None:
    # logrotate's way: rename the file, send SIGUSR1, and new lines go to a new file at the path.
    port, path, log = free_port(), tmp_path / "gw.hcl", tmp_path / "access.json"
    path.write_text(config(port) + f'\naccess_log {{ path = "{log}" }}\n')
    gateway = run_gateway("--config", str(path), *workers)
    wait_for(lambda: status(port, "/v1/models") == 200, what="the gateway to serve")
    wait_for(lambda: log.exists() and log.read_text(), what="the first line flushed")
    rotated = tmp_path / "access.json.1"
    log.rename(rotated)
    gateway.proc.send_signal(signal.SIGUSR1)
    processes = 2 if workers else 1
    wait_for(
        lambda: sum("access log is reopened" in line for line in gateway.lines) == processes,
        what="every process to reopen",
    )
    assert status(port, "/after") == 404
    wait_for(lambda: log.exists() and "/after" in log.read_text(), what="a line in the reopened file")
    assert "/after" not in rotated.read_text()
    gateway.proc.send_signal(signal.SIGTERM)
    assert gateway.proc.wait(timeout=30) == 0


def test_a_reload_asked_while_the_workers_start_does_not_kill_them(
    tmp_path: Path, run_gateway: Callable[..., Running]
) -> None:
    port, path = free_port(), tmp_path / "gw.hcl"
    path.write_text(config(port))
    gateway = run_gateway("--config", str(path), "--workers", "2")
    # Logged once the supervisor handles signals; the workers are still starting Python.
    wait_for(lambda: gateway.logged("worker 1 started"), what="the workers to be spawned")
    path.write_text(config(port, extra=True))
    gateway.proc.send_signal(signal.SIGHUP)
    # Each worker takes the reload once it serves.
    wait_for(lambda: sum("reloaded (generation 2)" in line for line in gateway.lines) == 2, what="reloads")
    for _ in range(20):  # new connections, spread over both workers
        assert status(port, "/health") == 200
    gateway.proc.send_signal(signal.SIGHUP)  # and the supervisor still passes reloads on
    wait_for(lambda: sum("reloaded (generation 3)" in line for line in gateway.lines) == 2, what="reloads")
    gateway.proc.send_signal(signal.SIGTERM)
    assert gateway.proc.wait(timeout=20) == 0
    assert not gateway.logged("exited"), gateway.stderr()


def _listens(process: psutil.Process, port: int) -> bool:
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in process.net_connections("tcp")
    )


def _parses_with_llhttp(process: psutil.Process) -> bool:
    """Whether httptools' C parser is loaded in `process` (`--http1 h11` never imports it)."""
    return any("httptools" in region.path for region in process.memory_maps())


@pytest.mark.parametrize(("flags", "adapter"), [((), "fast"), (("--http1", "h11"), "h11")])
def test_http1_flag_reaches_every_worker(
    tmp_path: Path, run_gateway: Callable[..., Running], flags: tuple[str, ...], adapter: str
) -> None:
    port, path = free_port(), tmp_path / "gw.hcl"
    path.write_text(config(port))
    proc = run_gateway("--config", str(path), "--workers", "2", *flags).proc
    supervisor = psutil.Process(proc.pid)
    workers = wait_for(lambda: len(supervisor.children()) == 2 and supervisor.children(), what="two workers")
    # A worker picks its adapter before it listens: once both listen, both have chosen (one of
    # them answering a request says nothing of the other, which may still be starting).
    wait_for(lambda: all(_listens(worker, port) for worker in workers), what="both workers to listen")
    response = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=chat())
    assert json.loads(response.text)["object"] == "chat.completion"
    for worker in workers:
        command = worker.cmdline()
        assert command[command.index("--http1") + 1] == adapter
        assert _parses_with_llhttp(worker) == (adapter == "fast")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0


@pytest.mark.parametrize("adapter", ["h11", "fast"])
def test_http1_flag_in_a_single_process(
    tmp_path: Path, run_gateway: Callable[..., Running], adapter: str
) -> None:
    port, path = free_port(), tmp_path / "gw.hcl"
    path.write_text(config(port))
    proc = run_gateway("--config", str(path), "--http1", adapter).proc
    wait_for(lambda: status(port, "/v1/models") == 200, what="the gateway to serve")
    assert _parses_with_llhttp(psutil.Process(proc.pid)) == (adapter == "fast")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=15) == 0
