"""The gateway side of the providers with two real sources at once (etcd and redis-server):
a file referencing a provider's object starts; a provider whose update does not compile is
rejected alone while another's, arriving in the same throttle window, is applied."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from a3s_gateway.compiler import CompileError
from a3s_gateway.runtime.gateway import Gateway

from ..stubs import eventually, free_port
from ..test_cli_run import Running, status, wait_for
from .kv_servers import EtcdServer, RedisServer
from .probes import FILES, routers

pytestmark = pytest.mark.anyio

CONFIG = (
    FILES
    + """
routers "files" {{
  rule    = "Path(`/health`)"
  service = "from-etcd@etcd"
}}
api {{
  address = "127.0.0.1:{admin}"
}}
providers {{
  throttle = "3s"
  etcd {{
    endpoints = ["{etcd}"]
  }}
  redis {{
    endpoints = ["127.0.0.1:{redis}"]
  }}
}}
"""
)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(notify=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_one_bad_provider_is_rejected_alone(
    tmp_path: Path, etcd: EtcdServer, redis_server: RedisServer
) -> None:
    etcd.put("a3s/http/services/from-etcd/load_balancer/servers/0/url", "demo://etcd")
    redis_server.client.mset({"a3s/http/routers/r/rule": "Path(`/r`)", "a3s/http/routers/r/service": "llm"})
    port, admin = free_port(), free_port()
    path = tmp_path / "gateway.hcl"
    path.write_text(
        CONFIG.format(port=port, admin=admin, etcd=etcd.url.removeprefix("http://"), redis=redis_server.port)
    )
    # The files reference etcd's service: the gateway starts once etcd has answered.
    async with Gateway(str(path)) as gateway, httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200
        assert {"files", "r@redis"} <= routers(gateway)
        providers = gateway.providers
        assert providers is not None
        # A reload (redis's router w): the next changes wait for the end of its throttle window.
        await anyio.to_thread.run_sync(
            lambda: redis_server.client.mset(
                {"a3s/http/routers/w/rule": "Path(`/w`)", "a3s/http/routers/w/service": "llm"}
            )
        )
        await eventually(lambda: "w@redis" in routers(gateway), timeout=30)
        reloads = gateway.reloads
        # In that window: a bad change from etcd and a good one from redis, applied together.
        await anyio.to_thread.run_sync(etcd.put, "a3s/http/services/from-etcd/load_balancer/strategy", "nope")
        await anyio.to_thread.run_sync(
            lambda: redis_server.client.mset(
                {"a3s/http/routers/s/rule": "Path(`/s`)", "a3s/http/routers/s/service": "llm"}
            )
        )
        await eventually(lambda: "s@redis" in routers(gateway), timeout=30)
        await eventually(lambda: providers.status["etcd"].state == "rejected", timeout=30)
        assert providers.status["redis"].state == "ok"
        error = providers.status["etcd"].last_error or ""
        assert "etcd: key a3s/http/services/from-etcd" in error and "nope" in error
        assert gateway.reloads == reloads + 1  # the pair failed together; redis's alone is the reload
        # etcd's last good fragment keeps serving the files' router.
        assert (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200
        answer = await client.get(f"http://127.0.0.1:{admin}/api/gateway/health")
        health = answer.json()["providers"]
        assert health["etcd"]["state"] == "rejected" and health["redis"]["state"] == "ok"
        assert "nope" in health["etcd"]["last_error"] and health["etcd"]["last_error_at"] > 0


REFERENCING = (
    FILES
    + """
routers "files" {{
  rule    = "Path(`/health`)"
  service = "from-redis@redis"
}}
providers {{
  redis {{
    endpoints = ["127.0.0.1:{redis}"]
  }}
}}
"""
)


def test_run_starts_files_that_reference_a_providers_object(
    tmp_path: Path, redis_server: RedisServer, run_gateway: Callable[..., Running]
) -> None:
    """`a3s-gateway run` (not only `Gateway`): the files alone do not compile, with redis's
    fragment they do, and the command leaves that to the gateway's first compile."""
    redis_server.client.set("a3s/http/services/from-redis/load_balancer/servers/0/url", "demo://redis")
    port, path = free_port(), tmp_path / "gateway.hcl"
    path.write_text(REFERENCING.format(port=port, redis=redis_server.port))
    gateway = run_gateway("--config", str(path))
    wait_for(lambda: status(port, "/health") == 200, what=f"/health served\n{''.join(gateway.lines)}")


def test_run_reports_a_reference_no_provider_gives(
    tmp_path: Path, redis_server: RedisServer, run_gateway: Callable[..., Running]
) -> None:
    path = tmp_path / "gateway.hcl"
    path.write_text(REFERENCING.format(port=free_port(), redis=redis_server.port))
    gateway = run_gateway("--config", str(path))
    assert gateway.proc.wait(timeout=60) == 1
    stderr = gateway.stderr()
    assert "unknown service 'from-redis@redis'" in stderr and f"{path}:" in stderr
    assert "Traceback" not in stderr


async def test_a_providers_update_compiles_the_files_as_loaded_not_as_on_disk(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """An edit of the files that was not reloaded is neither applied by a provider's update nor,
    when it does not compile, blamed on the provider; the next reload of the files reads it."""
    port, path = free_port(), tmp_path / "gateway.hcl"
    text = FILES.format(port=port) + (
        f'providers {{\n  throttle = "0.1s"\n  redis {{\n    endpoints = ["127.0.0.1:{redis_server.port}"]\n  }}\n}}\n'
    )
    path.write_text(text)

    async def put(name: str) -> None:
        keys = {
            f"a3s/http/routers/{name}/rule": f"Path(`/{name}`)",
            f"a3s/http/routers/{name}/service": "llm",
        }
        await anyio.to_thread.run_sync(lambda: redis_server.client.mset(keys))
        await eventually(lambda: f"{name}@redis" in routers(gateway), timeout=30)

    async with Gateway(str(path)) as gateway:
        providers = gateway.providers
        assert providers is not None
        await put("a")
        path.write_text(text + 'routers "edited" {\n  rule    = "Path(`/e`)"\n  service = "llm"\n}\n')
        await put("b")
        assert "edited" not in routers(gateway)
        path.write_text(text + 'routers "broken" {\n  rule =\n}\n')
        await put("c")
        assert providers.status["redis"].state == "ok" and providers.status["redis"].last_error is None
        with pytest.raises(CompileError):
            await gateway.reload()  # the files' own error is the files' reload's
        path.write_text(text + 'routers "edited" {\n  rule    = "Path(`/e`)"\n  service = "llm"\n}\n')
        await gateway.reload()
        assert {"edited", "a@redis", "b@redis", "c@redis"} <= routers(gateway)
