"""rate-limit: token bucket and windows per client key, 429 with Retry-After and RateLimit-*, bounded memory."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from a3s_gateway.runtime.api import Headers, Request, Response
from a3s_gateway.runtime.clock import ManualClock
from a3s_gateway.runtime.errors import TooManyRequests
from a3s_gateway.stdlib import registry
from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.common.limiters import LimiterTable
from a3s_gateway.stdlib.middlewares.rate_limit import RateLimit, RateLimitConfig

pytestmark = pytest.mark.anyio


class Upstream:
    """The next handler: answers 200 and counts the requests that reached it."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, request: Request) -> Response:
        self.calls += 1
        return Response.text(200, "ok")


def build(clock: ManualClock, state: LimiterTable | None = None, **options: Any) -> RateLimit:
    ctx = BuildContext(node_id="middleware:rl", name="rl", clock=clock)
    config = RateLimitConfig.model_validate(options)
    return RateLimit(config, state if state is not None else RateLimit.new_state(config, ctx), ctx)


def req(client_ip: str = "10.0.0.1", *headers: tuple[str, str]) -> Request:
    return Request("GET", "/v1/chat", Headers.from_pairs(headers), client_ip=client_ip)


async def passes(mw: RateLimit, request: Request, upstream: Upstream) -> bool:
    try:
        await mw(request, upstream)
    except TooManyRequests:
        return False
    return True


def test_registered_with_the_a3s_keys() -> None:
    kind = registry.lookup("middleware", "rate-limit")
    assert kind is not None and kind.impl is RateLimit and kind.config is RateLimitConfig
    config = RateLimitConfig.model_validate({"rate": 100, "burst": 50})
    assert (config.rate, config.burst, config.period, config.algorithm, config.key) == (
        100,
        50,
        1.0,
        "token-bucket",
        "ip",
    )
    assert "rate-limit" in kind.doc


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"rate": 0},
        {"rate": 10, "burst": 0},
        {"rate": 10, "period": "0s"},
        {"rate": 10, "key": "cookie:x"},
        {"rate": 10, "key": "header:"},
        {"rate": 10, "algorithm": "leaky"},
        {"rate": 10, "algorithm": "fixed-window", "burst": 5},
        {"rate": 10, "max_keys": 0},
        {"rate": 10, "brust": 5},
    ],
)
def test_bad_config_is_a_validation_error(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RateLimitConfig.model_validate(options)


async def test_token_bucket_admits_burst_then_429_with_headers_and_refills() -> None:
    clock, upstream = ManualClock(), Upstream()
    mw = build(clock, rate=1, burst=3)
    for remaining in (2, 1, 0):
        response = await mw(req(), upstream)
        assert response.headers.get("ratelimit-limit") == "3"
        assert response.headers.get("ratelimit-remaining") == str(remaining)
        assert response.headers.get("ratelimit-policy") == "3;w=1;burst=3"
    with pytest.raises(TooManyRequests) as refused:
        await mw(req(), upstream)
    assert upstream.calls == 3
    headers = dict(refused.value.headers)
    assert refused.value.status == 429
    assert headers["Retry-After"] == "1" and headers["RateLimit-Remaining"] == "0"
    assert headers["RateLimit-Reset"] == "3"
    clock.advance(1.0)
    assert await passes(mw, req(), upstream)
    assert not await passes(mw, req(), upstream)


async def test_period_spreads_the_rate() -> None:
    clock, upstream = ManualClock(), Upstream()
    mw = build(clock, rate=60, burst=1, period="1m")
    assert await passes(mw, req(), upstream)
    clock.advance(0.5)
    assert not await passes(mw, req(), upstream)
    clock.advance(0.5)
    assert await passes(mw, req(), upstream)


async def test_clients_are_counted_apart_by_ip() -> None:
    clock, upstream = ManualClock(), Upstream()
    mw = build(clock, rate=1, burst=1)
    assert await passes(mw, req("10.0.0.1"), upstream)
    assert await passes(mw, req("10.0.0.2"), upstream)
    assert not await passes(mw, req("10.0.0.1"), upstream)


async def test_header_key_with_ip_fallback() -> None:
    clock, upstream = ManualClock(), Upstream()
    mw = build(clock, rate=1, burst=1, key="header:X-User")
    assert await passes(mw, req("10.0.0.1", ("x-user", "alice")), upstream)
    assert await passes(mw, req("10.0.0.1", ("x-user", "bob")), upstream)
    assert not await passes(mw, req("10.0.0.9", ("x-user", "alice")), upstream)
    assert await passes(mw, req("10.0.0.1"), upstream)  # no header: counted against the IP
    assert not await passes(mw, req("10.0.0.1"), upstream)


async def test_jwt_claim_key() -> None:
    clock, upstream = ManualClock(), Upstream()
    mw = build(clock, rate=1, burst=1, key="jwt:sub")
    alice = req("10.0.0.1")
    alice.state["jwt_claims"] = {"sub": "alice"}
    again = req("10.0.0.2")
    again.state["jwt_claims"] = {"sub": "alice"}
    assert await passes(mw, alice, upstream)
    assert not await passes(mw, again, upstream)
    assert await passes(mw, req("10.0.0.2"), upstream)


async def test_fixed_window_resets_on_the_boundary() -> None:
    clock, upstream = ManualClock(start=100.0), Upstream()
    mw = build(clock, rate=2, period="10s", algorithm="fixed-window")
    assert await passes(mw, req(), upstream) and await passes(mw, req(), upstream)
    with pytest.raises(TooManyRequests) as refused:
        await mw(req(), upstream)
    assert dict(refused.value.headers)["Retry-After"] == "10"
    clock.advance(10.0)
    assert await passes(mw, req(), upstream)


async def test_sliding_window_counts_the_last_period() -> None:
    clock, upstream = ManualClock(start=100.0), Upstream()
    mw = build(clock, rate=2, period="10s", algorithm="sliding-window")
    assert await passes(mw, req(), upstream)
    clock.advance(6.0)
    assert await passes(mw, req(), upstream)
    clock.advance(3.0)  # t=9: both still inside the last 10 s
    with pytest.raises(TooManyRequests) as refused:
        await mw(req(), upstream)
    assert dict(refused.value.headers)["Retry-After"] == "1"
    clock.advance(1.0)  # t=10: the first one left the window
    assert await passes(mw, req(), upstream)
    assert not await passes(mw, req(), upstream)


async def test_headers_on_success_can_be_turned_off() -> None:
    mw = build(ManualClock(), rate=5, headers_on_success=False)
    response = await mw(req(), Upstream())
    assert "ratelimit-limit" not in response.headers


async def test_state_survives_a_rebuild() -> None:
    clock, upstream = ManualClock(), Upstream()
    first = build(clock, rate=1, burst=2)
    assert await passes(first, req(), upstream) and await passes(first, req(), upstream)
    rebuilt = build(clock, first.state, rate=1, burst=2)  # a reload hands the same state back
    assert not await passes(rebuilt, req(), upstream)


async def test_memory_is_bounded_by_max_keys_and_idle_keys_expire() -> None:
    clock, upstream = ManualClock(), Upstream()
    mw = build(clock, rate=1, burst=1, max_keys=3)
    for n in range(10):
        await passes(mw, req(f"10.0.0.{n}"), upstream)
        assert len(mw.state) <= 3
    assert mw.state.statistics()["evicted"] == 7
    clock.advance(5.0)  # every bucket is full again: nothing left to remember
    await passes(mw, req("10.1.0.1"), upstream)
    assert mw.state.sweep(clock.now()) >= 0
    assert len(mw.state) == 1 and mw.state.statistics()["expired"] >= 3
