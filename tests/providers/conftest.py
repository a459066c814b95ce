"""Fixtures of the provider tests: a real etcd and real redis-servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .kv_servers import EtcdServer, RedisServer


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path / "etcd-data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=[True, False], ids=["notifications", "polling"])
def redis_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    server = RedisServer(notify=request.param)
    server.start()
    try:
        yield server
    finally:
        server.stop()
