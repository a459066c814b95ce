"""`run --workers 2`: the live feed of either worker shows the state changes of both (they relay
them to each other, runtime/observe/relay.py: health flips, agent state changes) and rates summed
over both (the shared registry)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import psutil
import pytest

from .stubs import free_ports
from .test_cli_run import Running, run_gateway, wait_for
from .test_health_agent import Stubs
from .test_live_feed import agent_config, one_service
from .test_metrics_workers import spread_over_workers

__all__ = ["run_gateway"]  # the fixture, imported for the tests below


HEALTH_CHECK = """health_check {
      path                = "/health"
      interval            = "200ms"
      timeout             = "1s"
      unhealthy_threshold = 1
    }"""


def config(web: int, admin: int, backend: str) -> str:
    # dashboard = true switches the metrics on: the samples' rates.
    return one_service(web, admin, backend, HEALTH_CHECK, api="dashboard = true")


class Watcher:
    """A client of GET /api/gateway/live, reading its events in a thread of its own."""

    def __init__(self, url: str) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._thread = threading.Thread(target=self._read, args=(url,), daemon=True)
        self._thread.start()

    def _read(self, url: str) -> None:
        name = ""
        try:
            with httpx.stream("GET", url, timeout=httpx.Timeout(5, read=60)) as response:
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        name = line[len("event: ") :]
                    elif line.startswith("data: "):
                        self.events.append((name, json.loads(line[len("data: ") :])))
        except httpx.HTTPError:
            pass

    def of(self, name: str) -> list[dict[str, Any]]:
        return [data for event, data in list(self.events) if event == name]

    def join(self) -> None:
        self._thread.join(20)


@contextmanager
def backend_process(directory: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    (directory / "health").write_text("ok")
    (directory / "v1").mkdir()
    (directory / "v1" / "models").write_text('{"data": []}')
    args = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    proc = subprocess.Popen(args, cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200)
        yield proc
    finally:
        proc.kill()
        proc.wait()


class TwoWorkers:
    """`run --workers 2 --backend BACKEND` on a config, once both workers listen on its ports."""

    def __init__(
        self, run_gateway: Callable[..., Running], config: Path, backend: str, ports: set[int]
    ) -> None:
        self.proc = run_gateway("--config", str(config), "--workers", "2", "--backend", backend).proc
        self.supervisor = psutil.Process(self.proc.pid)
        wait_for(lambda: self._listening(ports), what="both workers to listen")

    def workers(self) -> list[psutil.Process]:
        children = self.supervisor.children()
        return [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    def _listening(self, ports: set[int]) -> bool:
        listening = [
            {c.laddr.port for c in w.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
            for w in self.workers()
        ]
        return len(listening) == 2 and all(ports <= each for each in listening)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=20) == 0


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_either_workers_feed_shows_both_workers_health_flips_and_summed_rates(
    tmp_path: Path, run_gateway: Callable[..., Running], backend: str
) -> None:
    files = tmp_path / "backend"
    files.mkdir()
    server, web, admin = free_ports(3)
    url = f"http://127.0.0.1:{server}"
    (tmp_path / "gw.hcl").write_text(config(web, admin, url))
    with backend_process(files, server) as upstream:
        gateway = TwoWorkers(run_gateway, tmp_path / "gw.hcl", backend, {web, admin})
        workers = gateway.workers
        shared = Path(workers()[0].environ()["PROMETHEUS_MULTIPROC_DIR"])
        pids = {w.pid for w in workers()}
        feed = Watcher(f"http://127.0.0.1:{admin}/api/gateway/live?events=sample,health")
        wait_for(lambda: feed.of("hello"), what="the feed's hello")

        sent = spread_over_workers(f"http://127.0.0.1:{web}/v1/models", pids, shared)
        # The one worker that answers the feed counts the requests of both.
        wait_for(
            lambda: any(s["entrypoints"].get("web", {}).get("requests") == sent for s in feed.of("sample")),
            what="a sample counting the requests of both workers",
        )

        # Each worker's health checker sees the backend die; the feed shows both flips.
        upstream.kill()
        upstream.wait()

        def flips() -> set[int]:
            return {h["worker"] for h in feed.of("health") if h["url"] == url and not h["healthy"]}

        assert wait_for(lambda: flips() == {0, 1}, what="the health flips of both workers")

        # One socket per worker; a killed worker's goes (the supervisor removes it), its
        # replacement's comes.
        def sockets() -> set[int]:
            return {int(p.stem) for p in (shared / "live").glob("*.sock")}

        assert sockets() == pids
        killed = workers()[0]
        killed.kill()
        killed.wait(10)
        wait_for(lambda: len(workers()) == 2 and sockets() == {w.pid for w in workers()}, what="a new socket")
        assert killed.pid not in sockets()
        gateway.stop()
        feed.join()
        assert not shared.exists()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_either_workers_feed_shows_both_workers_agent_state_changes(
    tmp_path: Path, run_gateway: Callable[..., Running], backend: str
) -> None:
    web, admin = free_ports(2)
    stubs = Stubs("json")  # a model server process answering a JSON health document
    try:
        stubs.start("a", "ready")
        url = stubs.url("a")
        (tmp_path / "gw.hcl").write_text(agent_config(web, admin, url))
        gateway = TwoWorkers(run_gateway, tmp_path / "gw.hcl", backend, {web, admin})
        feed = Watcher(f"http://127.0.0.1:{admin}/api/gateway/live?events=agent_state")
        wait_for(lambda: feed.of("hello"), what="the feed's hello")

        def changes() -> dict[int, list[tuple[str, str]]]:
            """Each worker's agent_state events, as (previous, state)."""
            out: dict[int, list[tuple[str, str]]] = {}
            for event in feed.of("agent_state"):
                assert (event["service"], event["url"]) == ("llm", url)
                out.setdefault(event["worker"], []).append((event["previous"], event["state"]))
            return out

        # Each worker probes on its own: each one's change comes, whichever answers the feed.
        anyio.run(stubs.move, "a", "loading")
        wait_for(lambda: changes() == {0: [("ready", "loading")], 1: [("ready", "loading")]}, what="both")
        anyio.run(stubs.move, "a", "ready")
        both = [("ready", "loading"), ("loading", "ready")]
        wait_for(lambda: changes() == {0: both, 1: both}, what="both workers' return to ready")
        gateway.stop()
        feed.join()
    finally:
        stubs.close()
