"""circuit-breaker: trips on consecutive failures or a ratio, 503 at once while open, recovers in half-open."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from pydantic import ValidationError

from a3s_gateway.runtime.api import Headers, Request, Response, RouteInfo
from a3s_gateway.runtime.clock import ManualClock
from a3s_gateway.runtime.errors import CircuitOpen, PayloadTooLarge, UpstreamConnectError
from a3s_gateway.stdlib import registry
from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.middlewares.circuit_breaker import CircuitBreaker, CircuitBreakerConfig

pytestmark = pytest.mark.anyio


class Upstream:
    """Answers `status` (or raises `error`), counting calls; `backend` is reported like a service would."""

    def __init__(self, status: int = 200, backend: str | None = None) -> None:
        self.status = status
        self.error: Exception | None = None
        self.calls = 0
        self.backend = backend

    async def __call__(self, request: Request) -> Response:
        self.calls += 1
        if self.backend is not None:
            request.state["backend"] = self.backend
        if self.error is not None:
            raise self.error
        return Response.text(self.status, "x")


def build(clock: ManualClock, **options: Any) -> CircuitBreaker:
    ctx = BuildContext(node_id="middleware:cb", name="cb", clock=clock)
    config = CircuitBreakerConfig.model_validate(options)
    return CircuitBreaker(config, CircuitBreaker.new_state(config, ctx), ctx)


def req(service: str = "llm") -> Request:
    request = Request("GET", "/", Headers())
    request.route = RouteInfo(entrypoint="web", router="r", service=service)
    return request


async def outcome(mw: CircuitBreaker, upstream: Upstream, service: str = "llm") -> int | str:
    try:
        return (await mw(req(service), upstream)).status
    except CircuitOpen:
        return "open"
    except UpstreamConnectError:
        return "error"


def test_registered_with_the_a3s_keys() -> None:
    kind = registry.lookup("middleware", "circuit-breaker")
    assert kind is not None and kind.impl is CircuitBreaker
    config = CircuitBreakerConfig.model_validate(
        {"failure_threshold": 5, "cooldown_secs": 30, "success_threshold": 2}
    )
    assert (config.failure_threshold, config.cooldown_secs, config.success_threshold) == (5, 30.0, 2)
    assert CircuitBreakerConfig.model_validate({"cooldown_secs": "1m"}).cooldown_secs == 60.0
    assert config.policy().half_open_max_requests == 2


@pytest.mark.parametrize(
    "options",
    [
        {"failure_threshold": 0},
        {"failure_ratio": 1.5},
        {"failure_ratio": 0},
        {"failure_statuses": ["6xx"]},
        {"failure_statuses": [42]},
        {"window": 0},
        {"cooldown": 5},
    ],
)
def test_bad_config_is_a_validation_error(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CircuitBreakerConfig.model_validate(options)


async def test_opens_after_consecutive_failures_and_answers_503_at_once() -> None:
    clock, upstream = ManualClock(), Upstream(500)
    mw = build(clock, failure_threshold=3, cooldown_secs=30)
    assert [await outcome(mw, upstream) for _ in range(3)] == [500, 500, 500]
    with pytest.raises(CircuitOpen) as refused:
        await mw(req(), upstream)
    assert refused.value.status == 503 and dict(refused.value.headers)["Retry-After"] == "30"
    assert upstream.calls == 3
    clock.advance(20)
    with pytest.raises(CircuitOpen) as refused:
        await mw(req(), upstream)
    assert dict(refused.value.headers)["Retry-After"] == "10"


async def test_a_success_resets_the_consecutive_count() -> None:
    clock, upstream = ManualClock(), Upstream(500)
    mw = build(clock, failure_threshold=2)
    await outcome(mw, upstream)
    upstream.status = 200
    await outcome(mw, upstream)
    upstream.status = 500
    assert [await outcome(mw, upstream) for _ in range(3)] == [500, 500, "open"]


async def test_half_open_trial_success_closes_and_failure_reopens() -> None:
    clock, upstream = ManualClock(), Upstream(503)
    mw = build(clock, failure_threshold=1, cooldown_secs=10, success_threshold=2, half_open_max_requests=1)
    assert await outcome(mw, upstream) == 503
    clock.advance(10)
    assert await outcome(mw, upstream) == 503  # the trial fails: open again, for a full cooldown
    assert await outcome(mw, upstream) == "open"
    clock.advance(10)
    upstream.status = 200
    assert [await outcome(mw, upstream) for _ in range(3)] == [200, 200, 200]
    assert mw.state_snapshot()["llm"]["state"] == "closed"


async def test_half_open_limits_trials_in_flight() -> None:
    clock, upstream = ManualClock(), Upstream(500)
    mw = build(clock, failure_threshold=1, cooldown_secs=5, half_open_max_requests=1)
    await outcome(mw, upstream)
    clock.advance(5)
    release, started = anyio.Event(), anyio.Event()

    async def slow(request: Request) -> Response:
        started.set()
        await release.wait()
        return Response.text(200, "ok")

    results: list[int | str] = []

    async def trial() -> None:
        results.append((await mw(req(), slow)).status)

    async with anyio.create_task_group() as tg:
        tg.start_soon(trial)
        await started.wait()
        assert await outcome(mw, Upstream(200)) == "open"  # the one trial slot is taken
        release.set()
    assert results == [200]
    assert await outcome(mw, Upstream(200)) == 200


async def test_gateway_errors_count_as_failures_client_errors_do_not() -> None:
    clock, upstream = ManualClock(), Upstream()
    mw = build(clock, failure_threshold=2)
    upstream.error = PayloadTooLarge("big")  # an inner middleware's refusal: no verdict
    for _ in range(3):
        with pytest.raises(PayloadTooLarge):
            await mw(req(), upstream)
    upstream.error, upstream.status = None, 404
    assert await outcome(mw, upstream) == 404
    upstream.error = UpstreamConnectError("refused")
    assert [await outcome(mw, upstream) for _ in range(3)] == ["error", "error", "open"]


async def test_failure_statuses_are_configurable() -> None:
    clock = ManualClock()
    mw = build(clock, failure_threshold=1, failure_statuses=[429, 503])
    assert await outcome(mw, Upstream(500)) == 500
    assert await outcome(mw, Upstream(500)) == 500
    assert await outcome(mw, Upstream(429)) == 429
    assert await outcome(mw, Upstream(200)) == "open"


async def test_trips_on_a_failure_ratio_over_the_window() -> None:
    clock = ManualClock()
    mw = build(clock, failure_threshold=100, failure_ratio=0.5, window="10s", min_requests=4)
    ok, bad = Upstream(200), Upstream(500)
    assert [await outcome(mw, u) for u in (ok, bad, ok)] == [200, 500, 200]
    assert await outcome(mw, bad) == 500  # 2 of 4 failed: the ratio is reached
    assert await outcome(mw, ok) == "open"


async def test_old_requests_leave_the_ratio_window() -> None:
    clock = ManualClock()
    mw = build(clock, failure_threshold=100, failure_ratio=0.5, window="10s", min_requests=4)
    ok, bad = Upstream(200), Upstream(500)
    for upstream in (bad, bad, ok):
        await outcome(mw, upstream)
    clock.advance(11)  # those three are out of the window
    assert [await outcome(mw, u) for u in (ok, ok, ok, bad)] == [200, 200, 200, 500]
    assert await outcome(mw, ok) == 200


async def test_breakers_are_per_service() -> None:
    clock = ManualClock()
    mw = build(clock, failure_threshold=1)
    assert await outcome(mw, Upstream(500), "a") == 500
    assert await outcome(mw, Upstream(200), "a") == "open"
    assert await outcome(mw, Upstream(200), "b") == 200
    snapshot = mw.state_snapshot()
    assert snapshot["a"]["state"] == "open" and snapshot["b"]["state"] == "closed"
    assert snapshot["a"]["trips"] == 1 and snapshot["a"]["rejected"] == 1


async def test_a_late_outcome_does_not_close_a_tripped_breaker() -> None:
    clock = ManualClock()
    mw = build(clock, failure_threshold=1, cooldown_secs=60)
    release, started = anyio.Event(), anyio.Event()

    async def slow(request: Request) -> Response:
        started.set()
        await release.wait()
        return Response.text(200, "ok")

    async with anyio.create_task_group() as tg:
        tg.start_soon(mw, req(), slow)
        await started.wait()
        assert await outcome(mw, Upstream(500)) == 500  # trips while the slow one is in flight
        release.set()
    assert mw.state_snapshot()["llm"]["state"] == "open"


async def test_per_backend_steers_away_from_open_backends() -> None:
    clock = ManualClock()
    mw = build(clock, failure_threshold=1, per_backend=True)
    await outcome(mw, Upstream(500, backend="http://b1"))
    await outcome(mw, Upstream(200, backend="http://b2"))
    seen: list[Any] = []

    async def service(request: Request) -> Response:
        seen.append(set(request.state.get("avoid_backends", ())))
        request.state["backend"] = "http://b2"
        return Response.text(200, "ok")

    assert (await mw(req(), service)).status == 200
    assert seen == [{"http://b1"}]
    snapshot = mw.state_snapshot()
    assert snapshot["http://b1"]["state"] == "open" and snapshot["http://b2"]["state"] == "closed"


async def test_state_survives_a_rebuild() -> None:
    clock = ManualClock()
    first = build(clock, failure_threshold=1)
    await outcome(first, Upstream(500))
    ctx = BuildContext(node_id="middleware:cb", name="cb", clock=clock)
    rebuilt = CircuitBreaker(first.config, first.state, ctx)
    assert await outcome(rebuilt, Upstream(200)) == "open"
