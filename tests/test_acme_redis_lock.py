"""Two gateways sharing a storage file and a Redis (`redis_url`): exactly one of them orders the
certificate, under the Redis lock; the other picks it up from the storage file. DNS-01 through
pebble-challtestsrv, so pebble validates without connecting to either gateway."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from a3s_gateway.runtime.gateway import Gateway

from .middlewares.conftest import redis_url  # noqa: F401 - the fixture
from .pebble_server import Pebble, challtestsrv_challenge, resolver_block, wait_verified
from .stubs import free_port

pytestmark = pytest.mark.anyio


def config(pebble: Pebble, port: int, storage: Path, redis: str) -> str:
    challenge = challtestsrv_challenge(pebble, before=f'redis_url = "{redis}"')
    return f"""
entrypoints "websecure" {{
  address = "127.0.0.1:{port}"
  tls {{ }}
}}
{resolver_block(pebble, storage, challenge)}
routers "app" {{
  rule    = "Host(`shared.test`)"
  service = "ping@internal"
  tls {{ cert_resolver = "pebble" }}
}}
"""


async def test_one_gateway_orders_under_the_redis_lock(tmp_path: Path, redis_url: str) -> None:  # noqa: F811
    first, second = free_port(), free_port()
    storage = tmp_path / "shared" / "acme.json"
    with Pebble.start(tmp_path / "pebble") as pebble:
        root = pebble.root()
        for name, port in (("a.hcl", first), ("b.hcl", second)):
            (tmp_path / name).write_text(config(pebble, port, storage, redis_url))
        async with Gateway(str(tmp_path / "a.hcl")) as a, Gateway(str(tmp_path / "b.hcl")) as b:
            await wait_verified(first, "shared.test", root)
            await wait_verified(second, "shared.test", root)
            orders = [g.health()["acme"]["pebble"]["certificates"][0]["orders"] for g in (a, b)]
            assert sorted(orders) == [0, 1], orders
        assert (tmp_path / "pebble" / "pebble.log").read_text().count("Issued certificate serial") == 1
    # Both took the lock in Redis (SET NX, then the compare-and-delete script), none by the file.
    stats = redis.Redis.from_url(redis_url).info("commandstats")
    assert stats["cmdstat_set"]["calls"] >= 2 and stats["cmdstat_eval"]["calls"] >= 2, stats
    assert not (tmp_path / "shared" / "acme.json.lock").exists()
