"""The Redis provider against a real redis-server: the etcd layout as Redis strings, watched
through keyspace notifications, or polled when the server sends none; a bad value is rejected
alone; the server killed and restarted is recovered with no request dropped."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest
import redis

from a3s_gateway.runtime.gateway import Gateway

from ..stubs import eventually, free_port
from .kv_servers import RedisServer
from .probes import FILES, Load, routers, until_status

pytestmark = pytest.mark.anyio

CONFIG = (
    FILES
    + """
providers {{
  throttle = "0.2s"
  redis {{
    endpoints     = ["127.0.0.1:{redis}"]
    root_key      = "a3s"
    poll_interval = "0.3s"
  }}
}}
"""
)

API = {
    "a3s/http/routers/api/rule": "PathPrefix(`/api`)",
    "a3s/http/routers/api/service": "llm@file",
    "a3s/http/routers/api/middlewares/0": "strip",
    "a3s/http/middlewares/strip/type": "strip-prefix",
    "a3s/http/middlewares/strip/prefixes/0": "/api",
}


def config(tmp_path: Path, server: RedisServer) -> tuple[str, int]:
    port = free_port()
    path = tmp_path / "gateway.hcl"
    path.write_text(CONFIG.format(port=port, redis=server.port))
    return str(path), port


async def put(server: RedisServer, keys: dict[str, str | bytes]) -> None:
    await anyio.to_thread.run_sync(lambda: server.client.mset(keys))


async def test_keys_become_routers_and_changes_reload(tmp_path: Path, redis_server: RedisServer) -> None:
    await put(redis_server, API)
    path, port = config(tmp_path, redis_server)
    async with Gateway(path) as gateway, httpx.AsyncClient() as client:
        await until_status(client, port, "/api/health", 200)
        assert "api@redis" in routers(gateway)
        await put(
            redis_server,
            {"a3s/http/routers/chat/rule": "Path(`/chat`)", "a3s/http/routers/chat/service": "llm"},
        )
        await eventually(lambda: "chat@redis" in routers(gateway), timeout=20)
        await anyio.to_thread.run_sync(redis_server.client.delete, *API)
        await until_status(client, port, "/api/health", 404)
        # A value that is not UTF-8 is rejected alone; the last good configuration serves.
        await put(redis_server, {"a3s/http/routers/chat/rule": b"Path(`/\xfe`)"})
        providers = gateway.providers
        assert providers is not None
        await eventually(lambda: providers.status["redis"].state == "rejected", timeout=20)
        assert "redis: key a3s/http/routers/chat/rule:1:1" in (providers.status["redis"].last_error or "")
        assert "chat@redis" in routers(gateway)


async def test_a_key_that_is_not_a_string_is_a_diagnostic(tmp_path: Path, redis_server: RedisServer) -> None:
    await put(redis_server, API)
    path, port = config(tmp_path, redis_server)
    async with Gateway(path) as gateway, httpx.AsyncClient() as client:
        await until_status(client, port, "/api/health", 200)
        providers = gateway.providers
        assert providers is not None
        # A hash where the layout wants a string: rejected with the key and its type named,
        # never skipped in silence; the last good configuration keeps serving.
        key = "a3s/http/routers/api/service"
        await anyio.to_thread.run_sync(redis_server.client.delete, key)
        await anyio.to_thread.run_sync(lambda: redis_server.client.hset(key, mapping={"name": "llm"}))
        await eventually(lambda: providers.status["redis"].state == "rejected", timeout=20)
        error = providers.status["redis"].last_error or ""
        assert "key a3s/http/routers/api/service" in error
        assert "holds a Redis hash" in error
        assert "api@redis" in routers(gateway)
        await until_status(client, port, "/api/health", 200)


async def test_redis_killed_and_restarted_drops_no_request(tmp_path: Path, redis_server: RedisServer) -> None:
    await put(redis_server, API)
    path, port = config(tmp_path, redis_server)
    async with Gateway(path) as gateway, httpx.AsyncClient() as client:
        await until_status(client, port, "/api/health", 200)
        providers = gateway.providers
        assert providers is not None
        load = Load(client, port, "/api/health")
        async with anyio.create_task_group() as tg:
            tg.start_soon(load.run)
            await anyio.to_thread.run_sync(redis_server.stop)
            await eventually(lambda: providers.status["redis"].state == "lost", timeout=20)
            during = load.served
            await eventually(lambda: load.served > during + 5, timeout=20)
            await anyio.to_thread.run_sync(redis_server.start)  # empty: no persistence
            await put(
                redis_server,
                {**API, "a3s/http/routers/new/rule": "Path(`/new`)", "a3s/http/routers/new/service": "llm"},
            )
            await eventually(lambda: "new@redis" in routers(gateway), timeout=60)
            load.stop.set()
        assert load.failures == []


async def test_a_url_endpoint_is_watched_in_the_database_it_names(tmp_path: Path) -> None:
    """`redis://host:port/2`: the keys are read from database 2 and its keyspace notifications
    (`__keyspace@2__`) are the ones subscribed to, so a change there is seen."""
    server = RedisServer(notify=True)
    server.start()
    try:
        db2 = redis.Redis(port=server.port, db=2)
        db2.mset(API)
        port, path = free_port(), tmp_path / "gateway.hcl"
        text = CONFIG.format(port=port, redis=server.port)
        path.write_text(text.replace(f'"127.0.0.1:{server.port}"', f'"redis://127.0.0.1:{server.port}/2"'))
        async with Gateway(str(path)) as gateway, httpx.AsyncClient() as client:
            await until_status(client, port, "/api/health", 200)
            keys = {"a3s/http/routers/chat/rule": "Path(`/chat`)", "a3s/http/routers/chat/service": "llm"}
            await anyio.to_thread.run_sync(db2.mset, keys)
            await eventually(lambda: "chat@redis" in routers(gateway), timeout=20)
        db2.close()
    finally:
        server.stop()
