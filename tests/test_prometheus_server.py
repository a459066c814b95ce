"""A real Prometheus server (Debian's `prometheus`) scrapes the gateway's /metrics every second;
the test sends a known number of requests and asks Prometheus' HTTP API until it reports them."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from a3s_gateway.runtime.gateway import Gateway

from .backends import backend
from .stubs import free_port, free_ports

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        shutil.which("prometheus") is None, reason="prometheus is installed by make test-deps"
    ),
]

SENT = 25


@asynccontextmanager
async def prometheus(tmp_path: Path, target: str) -> AsyncIterator[str]:
    """A Prometheus server scraping `target` every second, on a free port, with its storage in
    `tmp_path`; its base URL once it is ready."""
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: gateway\n    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    command = [
        "prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    async with await anyio.open_process(command, stdout=log, stderr=subprocess.STDOUT) as process:
        try:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient() as client:
                with anyio.fail_after(30):
                    while True:
                        try:
                            if (await client.get(f"{base}/-/ready")).status_code == 200:
                                break
                        except httpx.TransportError:
                            pass
                        await anyio.sleep(0.1)
            yield base
        finally:
            process.terminate()
            await process.wait()
            log.close()


async def query(client: httpx.AsyncClient, base: str, promql: str) -> float | None:
    reply = (await client.get(f"{base}/api/v1/query", params={"query": promql})).json()
    assert reply["status"] == "success", reply
    result = reply["data"]["result"]
    return float(result[0]["value"][1]) if result else None


async def test_prometheus_scrapes_the_requests_it_was_sent(tmp_path: Path) -> None:
    web, api = free_ports(2)
    async with backend() as be:
        path = tmp_path / "gw.hcl"
        path.write_text(
            f'entrypoints "web" {{ address = "127.0.0.1:{web}" }}\n'
            'routers "app" {\n  rule = "PathPrefix(`/`)"\n  service = "app"\n}\n'
            f'services "app" {{ load_balancer {{ servers = [{{ url = "{be.url}" }}] }} }}\n'
            f'api {{ address = "127.0.0.1:{api}" }}\n'
            "metrics {\n  prometheus { add_routers_labels = true }\n}\n"
        )
        async with (
            Gateway(str(path)),
            prometheus(tmp_path, f"127.0.0.1:{api}") as base,
            httpx.AsyncClient() as client,
        ):
            for i in range(SENT):
                assert (await client.get(f"http://127.0.0.1:{web}/json?i={i}")).status_code == 200
            promql = 'sum(a3s_gateway_router_requests_total{router="app"})'
            with anyio.fail_after(30):
                while await query(client, base, promql) != SENT:
                    await anyio.sleep(0.2)
            up = await query(client, base, 'up{job="gateway"}')
            assert up == 1
