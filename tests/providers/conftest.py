"""Fixtures of the provider tests: a real etcd and real redis-servers, and `a3s-gateway run`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..test_cli_run import run_gateway  # noqa: F401 (a fixture: `run` as a subprocess)
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
