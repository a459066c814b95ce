"""The etcd provider against a real etcd (Debian's etcd-server, started by the test): keys in
Traefik's layout become `name@etcd` routers, services and middlewares; a put or a delete is a
reload; a bad key or value is rejected alone; etcd killed and restarted mid-watch is recovered
with no request dropped; bursts are coalesced by the throttle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from a3s_gateway.runtime.gateway import Gateway

from ..stubs import eventually, free_port
from .kv_servers import EtcdServer
from .probes import FILES, Load, routers, status, until_status

pytestmark = pytest.mark.anyio

CONFIG = (
    FILES
    + """
metrics {{
  prometheus {{ }}
}}
providers {{
  throttle = "{throttle}"
  etcd {{
    endpoints = ["{etcd}"]
    root_key  = "a3s"
  }}
}}
"""
)

API = {
    "a3s/http/routers/api/rule": "PathPrefix(`/api`)",
    "a3s/http/routers/api/service": "own",
    "a3s/http/routers/api/middlewares/0": "strip",
    "a3s/http/services/own/load_balancer/servers/0/url": "demo://own",
    "a3s/http/middlewares/strip/type": "strip-prefix",
    "a3s/http/middlewares/strip/prefixes/0": "/api",
}


def config(tmp_path: Path, etcd: EtcdServer, throttle: str = "0.2s") -> tuple[str, int]:
    port = free_port()
    path = tmp_path / "gateway.hcl"
    path.write_text(CONFIG.format(port=port, etcd=etcd.url.removeprefix("http://"), throttle=throttle))
    return str(path), port


async def put(etcd: EtcdServer, keys: dict[str, Any]) -> None:
    for key, value in keys.items():
        await anyio.to_thread.run_sync(etcd.put, key, value)


async def test_keys_become_routers_and_changes_reload(tmp_path: Path, etcd: EtcdServer) -> None:
    await put(etcd, API)
    path, port = config(tmp_path, etcd)
    async with Gateway(path) as gateway, httpx.AsyncClient() as client:
        await until_status(client, port, "/api/health", 200)  # stripped by strip@etcd, to own@etcd
        assert {"llm", "api@etcd"} <= routers(gateway)
        assert gateway.health()["providers"]["etcd"]["state"] == "ok"
        # An etcd router may use the files' service: unqualified, none of etcd's is named so.
        await put(
            etcd,
            {"a3s/http/routers/chat/rule": "PathPrefix(`/chat`)", "a3s/http/routers/chat/service": "llm"},
        )
        await eventually(lambda: "chat@etcd" in routers(gateway), timeout=20)
        await anyio.to_thread.run_sync(etcd.delete, "a3s/http/routers/api/rule")
        await anyio.to_thread.run_sync(etcd.delete, "a3s/http/routers/api/service")
        await anyio.to_thread.run_sync(etcd.delete, "a3s/http/routers/api/middlewares/0")
        await until_status(client, port, "/api/health", 404)
        assert await status(client, port, "/v1/models") == 200


async def test_a_bad_value_is_rejected_alone_and_the_last_good_one_serves(
    tmp_path: Path, etcd: EtcdServer
) -> None:
    await put(etcd, API)
    path, port = config(tmp_path, etcd)
    async with Gateway(path) as gateway, httpx.AsyncClient() as client:
        await until_status(client, port, "/api/health", 200)
        reloads = gateway.reloads
        await put(etcd, {"a3s/http/routers/api/rule": b"PathPrefix(`/\xff`)"})
        providers = gateway.providers
        assert providers is not None
        await eventually(lambda: providers.status["etcd"].state == "rejected", timeout=20)
        error = gateway.health()["providers"]["etcd"]["last_error"]
        assert (
            "etcd: key a3s/http/routers/api/rule:1:1: error: provider etcd: the value is not UTF-8" in error
        )
        assert gateway.reloads == reloads  # nothing swapped: the last good fragment serves
        assert await status(client, port, "/api/health") == 200
        metrics = gateway.metrics
        assert metrics is not None
        stamp = metrics.value("a3s_gateway_provider_last_error_timestamp_seconds", {"provider": "etcd"})
        assert stamp is not None and stamp > 0
        # A key outside the layout, and a rule that does not parse: each named by its key.
        await put(etcd, {"a3s/http/routers/api/rule": "PathPrefix(`/api`)", "a3s/http/nonsense": "1"})
        await eventually(
            lambda: "a3s/http/nonsense" in (providers.status["etcd"].last_error or ""), timeout=20
        )
        await anyio.to_thread.run_sync(etcd.delete, "a3s/http/nonsense")
        await put(etcd, {"a3s/http/routers/api/rule": "PathPrefix(`/api`"})
        await eventually(lambda: "invalid rule" in (providers.status["etcd"].last_error or ""), timeout=20)
        assert "etcd: key a3s/http/routers/api/rule:1:" in (providers.status["etcd"].last_error or "")
        assert await status(client, port, "/api/health") == 200
        # Fixed: accepted again.
        await put(etcd, {"a3s/http/routers/api/rule": "PathPrefix(`/api`) || Path(`/extra`)"})
        await eventually(lambda: providers.status["etcd"].state == "ok", timeout=20)


async def test_etcd_killed_and_restarted_mid_watch_drops_no_request(tmp_path: Path, etcd: EtcdServer) -> None:
    await put(etcd, API)
    path, port = config(tmp_path, etcd)
    async with Gateway(path) as gateway, httpx.AsyncClient() as client:
        await until_status(client, port, "/api/health", 200)
        providers = gateway.providers
        assert providers is not None
        load = Load(client, port, "/api/health")
        async with anyio.create_task_group() as tg:
            tg.start_soon(load.run)
            await anyio.to_thread.run_sync(etcd.stop)
            await eventually(lambda: providers.status["etcd"].state == "lost", timeout=20)
            assert "source lost" in gateway.health()["providers"]["etcd"]["last_error"]
            during = load.served
            await eventually(lambda: load.served > during + 5, timeout=20)  # still serving, etcd down
            await anyio.to_thread.run_sync(etcd.start)
            await put(
                etcd, {"a3s/http/routers/new/rule": "Path(`/new`)", "a3s/http/routers/new/service": "llm"}
            )
            await eventually(lambda: "new@etcd" in routers(gateway), timeout=60)
            assert providers.status["etcd"].state == "ok"
            load.stop.set()
        assert load.failures == []
        assert load.served > 10


async def test_a_burst_of_puts_is_coalesced_by_the_throttle(tmp_path: Path, etcd: EtcdServer) -> None:
    await put(etcd, API)
    path, port = config(tmp_path, etcd, throttle="4s")
    async with Gateway(path) as gateway, httpx.AsyncClient() as client:
        await until_status(client, port, "/api/health", 200)
        await eventually(lambda: "api@etcd" in routers(gateway))
        before = gateway.reloads
        burst = {}
        for i in range(10):
            burst[f"a3s/http/routers/r{i}/rule"] = f"Path(`/r{i}`)"
            burst[f"a3s/http/routers/r{i}/service"] = "llm"
        await put(etcd, burst)
        await eventually(lambda: {f"r{i}@etcd" for i in range(10)} <= routers(gateway), timeout=30)
        # 20 puts: the first applied at once, the rest within the throttle after it, together.
        assert gateway.reloads - before <= 2
