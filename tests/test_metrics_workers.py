"""`run --workers 2`: /metrics on any worker reports the sum over both (prometheus-client's
multiprocess mode, in a directory the supervisor makes and deletes)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .stubs import free_ports
from .test_cli_run import Running, config, run_gateway, wait_for

__all__ = ["run_gateway", "spread_over_workers"]  # the fixture, imported for the tests below

METRICS = '\nmetrics {\n  prometheus {\n    add_routers_labels = true\n  }\n}\napi {\n  address = "127.0.0.1:%d"\n}\n'


def routed(text: str) -> float:
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "a3s_gateway_router_requests_total" and s.labels["router"] == "llm"
    )


def spread_over_workers(url: str, pids: set[int], shared: Path) -> int:
    """GET `url`, each request on a connection of its own (SO_REUSEPORT spreads new connections
    over the workers), until every worker of `pids` has counted one; how many were sent."""
    sent = 0

    def all_served() -> bool:
        nonlocal sent
        for _ in range(10):
            with httpx.Client() as client:
                assert client.get(url).status_code == 200
            sent += 1
        return pids <= {int(p.stem.rsplit("_", 1)[1]) for p in shared.glob("counter_*.db")}

    wait_for(all_served, what="requests on every worker")
    return sent


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_every_scrape_reports_the_requests_of_both_workers(
    tmp_path: Path, run_gateway: Callable[..., Running], backend: str
) -> None:
    port, api = free_ports(2)
    path = tmp_path / "gw.hcl"
    path.write_text(config(port) + METRICS % api)
    proc = run_gateway("--config", str(path), "--workers", "2", "--backend", backend).proc
    supervisor = psutil.Process(proc.pid)

    def workers() -> list[psutil.Process]:
        return [p for p in supervisor.children() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    wait_for(lambda: len(workers()) == 2, what="two workers")
    shared = Path(workers()[0].environ()["PROMETHEUS_MULTIPROC_DIR"])
    pids = {w.pid for w in workers()}

    def serving() -> bool:
        return all(
            any(
                c.status == psutil.CONN_LISTEN and c.laddr.port in (port, api)
                for c in w.net_connections("tcp")
            )
            for w in workers()
        )

    wait_for(serving, what="both workers to listen")
    wait_for(
        lambda: httpx.get(f"http://127.0.0.1:{api}/metrics", timeout=2).status_code == 200, what="/metrics"
    )

    sent = spread_over_workers(f"http://127.0.0.1:{port}/v1/models", pids, shared)
    scrapes = []
    for _ in range(12):  # each scrape on a connection of its own: both workers answer some
        with httpx.Client() as client:
            scrapes.append(routed(client.get(f"http://127.0.0.1:{api}/metrics").text))
    assert scrapes == [sent] * 12

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert not shared.exists()
