"""rate-limit-redis: one limit across middleware instances through a real redis-server; fail open / closed."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis
from pydantic import ValidationError

from a3s_gateway.runtime.api import Headers, Request, Response
from a3s_gateway.runtime.clock import ManualClock
from a3s_gateway.runtime.errors import ServiceUnavailable, TooManyRequests
from a3s_gateway.stdlib import registry
from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.middlewares.rate_limit_redis import RateLimitRedis, RateLimitRedisConfig

from ..stubs import free_port


class Upstream:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, request: Request) -> Response:
        self.calls += 1
        return Response.text(200, "ok")


def build(clock: ManualClock | None = None, **options: Any) -> RateLimitRedis:
    ctx = BuildContext(node_id="middleware:rl", name="rl", clock=clock or ManualClock())
    config = RateLimitRedisConfig.model_validate(options)
    return RateLimitRedis(config, RateLimitRedis.new_state(config, ctx), ctx)


def req(client_ip: str = "10.0.0.1") -> Request:
    return Request("GET", "/", Headers(), client_ip=client_ip)


async def count_passing(mws: list[RateLimitRedis], n: int, upstream: Upstream) -> int:
    passed = 0
    for i in range(n):
        try:
            await mws[i % len(mws)](req(), upstream)
            passed += 1
        except TooManyRequests:
            pass
    return passed


def prefix() -> str:
    return f"test:{uuid.uuid4().hex}:"


def test_registered_with_the_a3s_keys() -> None:
    kind = registry.lookup("middleware", "rate-limit-redis")
    assert kind is not None and kind.impl is RateLimitRedis
    config = RateLimitRedisConfig.model_validate({"rate": 100, "burst": 50, "redis_url": "redis://r:6379/1"})
    assert (config.rate, config.burst, config.redis_url, config.fail_open) == (
        100,
        50,
        "redis://r:6379/1",
        True,
    )
    with pytest.raises(ValidationError):
        RateLimitRedisConfig.model_validate({"rate": 1, "max_keys": 5})


@pytest.mark.anyio
async def test_the_limit_holds_across_two_instances(redis_url: str) -> None:
    # Two middlewares with separate state: as two workers or two gateway processes would have.
    options = {"rate": 1, "burst": 5, "period": "1h", "redis_url": redis_url, "key_prefix": prefix()}
    first, second = build(**options), build(**options)
    upstream = Upstream()
    try:
        assert await count_passing([first, second], 12, upstream) == 5
        assert upstream.calls == 5
        with pytest.raises(TooManyRequests) as refused:
            await second(req(), upstream)
        headers = dict(refused.value.headers)
        assert headers["RateLimit-Limit"] == "5" and headers["RateLimit-Remaining"] == "0"
        assert int(headers["Retry-After"]) > 600
        response = await first(req("10.9.9.9"), upstream)  # another client has its own bucket
        assert response.headers.get("ratelimit-remaining") == "4"
    finally:
        await RateLimitRedis.close_state(first.state)
        await RateLimitRedis.close_state(second.state)


@pytest.mark.anyio
@pytest.mark.parametrize("algorithm", ["fixed-window", "sliding-window"])
async def test_windows_hold_across_instances(redis_url: str, algorithm: str) -> None:
    options = {
        "rate": 3,
        "period": "1h",
        "algorithm": algorithm,
        "redis_url": redis_url,
        "key_prefix": prefix(),
    }
    mws = [build(**options), build(**options)]
    try:
        assert await count_passing(mws, 8, Upstream()) == 3
    finally:
        for mw in mws:
            await RateLimitRedis.close_state(mw.state)


@pytest.mark.anyio
async def test_script_is_loaded_again_after_a_flush(redis_url: str) -> None:
    mw = build(rate=10, redis_url=redis_url, key_prefix=prefix())
    try:
        redis.Redis.from_url(redis_url).script_flush()
        assert await count_passing([mw], 2, Upstream()) == 2
        keys = redis.Redis.from_url(redis_url).keys(mw.config.key_prefix + "*")
        assert len(keys) == 1
        assert redis.Redis.from_url(redis_url).pttl(keys[0]) > 0  # idle keys vanish by themselves
    finally:
        await RateLimitRedis.close_state(mw.state)


@pytest.mark.anyio
async def test_redis_down_fails_open_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    mw = build(clock, rate=1, burst=1, redis_url=f"redis://127.0.0.1:{free_port()}/0", timeout="200ms")
    upstream = Upstream()
    try:
        with caplog.at_level("WARNING"):
            for _ in range(3):
                response = await mw(req(), upstream)
                assert response.status == 200 and "ratelimit-limit" not in response.headers
        assert upstream.calls == 3
        # One attempt, then Redis is left alone for retry_interval: requests don't wait on it.
        assert mw.state.statistics()["redis_errors"] == 1
        assert mw.state.statistics()["failed_open"] == 3
        assert sum("redis unavailable" in r.getMessage() for r in caplog.records) == 1
        clock.advance(1.0)
        await mw(req(), upstream)
        assert mw.state.statistics()["redis_errors"] == 2
    finally:
        await RateLimitRedis.close_state(mw.state)


@pytest.mark.anyio
async def test_redis_down_fails_closed_with_503() -> None:
    mw = build(rate=1, redis_url=f"redis://127.0.0.1:{free_port()}/0", fail_open=False)
    upstream = Upstream()
    try:
        for _ in range(2):
            with pytest.raises(ServiceUnavailable) as refused:
                await mw(req(), upstream)
            assert refused.value.status == 503
        assert upstream.calls == 0
    finally:
        await RateLimitRedis.close_state(mw.state)
