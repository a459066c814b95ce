"""The scaler loop on its own: the activator's poke, and an executor that fails."""

from __future__ import annotations

import logging

import anyio
import pytest

from a3s_gateway.compiler.schema import ScalingConfig
from a3s_gateway.runtime.errors import ServiceUnavailable
from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.scalers import Scaler

from .stubs import eventually

pytestmark = pytest.mark.anyio


async def waiter(scaler: Scaler) -> None:
    with pytest.raises(ServiceUnavailable):  # closing the scaler fails whoever still waits
        await scaler.buffer.acquire()


async def test_a_waiting_request_gets_a_decision_at_once(anyio_backend: object) -> None:
    # A static executor with no server never becomes ready: the request waits, and the poke
    # makes the autoscaler ask for a replica long before the next tick (a minute away).
    scaling = ScalingConfig(tick_interval=60, buffer_timeout=5)
    scaler = Scaler("svc", scaling, BuildContext("scaler:svc", "svc"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(scaler.run)
        await eventually(lambda: scaler.asked == 0)
        tg.start_soon(waiter, scaler)
        await eventually(lambda: scaler.executor.desired == 1, timeout=1.0)
        assert scaler.asked == 1
        decision = scaler.snapshot()["autoscaler"]["last"]
        assert decision["desired"] == 1 and decision["ready"] == 0
        await scaler.aclose()
        tg.cancel_scope.cancel()
    assert scaler.buffer.statistics().queued == 0


async def test_a_refused_request_still_asks_for_a_replica(anyio_backend: object) -> None:
    # buffer_enabled = false: the request is answered 503 at once and nothing waits, yet the
    # autoscaler sees it (concurrency 1) and asks for a replica, long before the next tick.
    scaling = ScalingConfig(tick_interval=60, buffer_enabled=False)
    scaler = Scaler("svc", scaling, BuildContext("scaler:svc", "svc"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(scaler.run)
        await eventually(lambda: scaler.asked == 0)
        scaler.buffer.refuse()
        await eventually(lambda: scaler.executor.desired == 1)
        decision = scaler.snapshot()["autoscaler"]["last"]
        assert decision["desired"] == 1 and decision["stable_concurrency"] > 0
        await scaler.aclose()
        tg.cancel_scope.cancel()


async def test_a_failing_executor_is_logged_and_retried(
    anyio_backend: object, caplog: pytest.LogCaptureFixture
) -> None:
    options = {
        "scale_url": "http://127.0.0.1:9/scale",
        "endpoints_url": "http://127.0.0.1:9/endpoints",
        "auth_header_env": "A3S_TEST_UNSET_VARIABLE",
    }
    scaling = ScalingConfig(executor="http", executor_options=options)
    scaler = Scaler("svc", scaling, BuildContext("scaler:svc", "svc"))
    with caplog.at_level(logging.ERROR):
        async with anyio.create_task_group() as tg:
            tg.start_soon(scaler.run)
            await eventually(lambda: "executor 'http' failed" in caplog.text)
            await scaler.aclose()
    assert "A3S_TEST_UNSET_VARIABLE" in caplog.text
