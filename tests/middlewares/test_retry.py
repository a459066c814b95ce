"""retry: backoff with jitter, replay only when safe, never once a response was returned."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError

from a3s_gateway.runtime.api import Headers, Request, Response, iter_body
from a3s_gateway.runtime.errors import (
    GatewayTimeout,
    PayloadTooLarge,
    UpstreamConnectError,
    UpstreamConnectTimeout,
)
from a3s_gateway.stdlib import registry
from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.middlewares.retry import Retry, RetryConfig, backoff_delay

pytestmark = pytest.mark.anyio


class Body:
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)
        self.read = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self.read >= len(self.chunks):
            raise StopAsyncIteration
        self.read += 1
        return self.chunks[self.read - 1]

    async def aclose(self) -> None:
        pass


class TrackedBody(Body):
    closed = False

    async def aclose(self) -> None:
        self.closed = True


class Upstream:
    """Plays a script: each attempt answers a status or raises an error, reading the body first."""

    def __init__(self, *script: int | Exception, read_body: bool = True) -> None:
        self.script = list(script)
        self.bodies: list[bytes] = []
        self.responses: list[TrackedBody] = []
        self.read_body = read_body

    async def __call__(self, request: Request) -> Response:
        step = self.script[min(len(self.bodies), len(self.script) - 1)]
        received = b""
        if self.read_body and not isinstance(step, UpstreamConnectError):
            async for chunk in request.body:
                received += chunk
        self.bodies.append(received)
        if isinstance(step, Exception):
            raise step
        body = TrackedBody(b"attempt %d" % len(self.bodies))
        self.responses.append(body)
        return Response(step, Headers(), body)

    @property
    def attempts(self) -> int:
        return len(self.bodies)


def build(**options: Any) -> Retry:
    ctx = BuildContext(node_id="middleware:retry", name="retry")
    config = RetryConfig.model_validate({"retry_interval_ms": 1, **options})
    return Retry(config, Retry.new_state(config, ctx), ctx)


def get() -> Request:
    return Request("GET", "/v1/models", Headers())


def post(*chunks: bytes) -> Request:
    headers = Headers.from_pairs([("transfer-encoding", "chunked")])
    return Request("POST", "/v1/chat/completions", headers, body=Body(*chunks))


def test_registered_with_the_a3s_keys() -> None:
    kind = registry.lookup("middleware", "retry")
    assert kind is not None and kind.impl is Retry
    config = RetryConfig.model_validate({"max_retries": 3, "retry_interval_ms": 100})
    assert (config.max_retries, config.retry_interval_ms, config.retry_on_statuses) == (
        3,
        100,
        (502, 503, 504),
    )


@pytest.mark.parametrize(
    "options", [{"max_retries": -1}, {"retry_interval_ms": -5}, {"retry_on_statuses": [200]}, {"retries": 2}]
)
def test_bad_config_is_a_validation_error(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RetryConfig.model_validate(options)


def test_backoff_is_full_jitter_under_a_doubling_cap() -> None:
    config = RetryConfig(retry_interval_ms=100, max_interval=1.0)
    rng = random.Random(7)
    for retry, cap in [(0, 0.1), (1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (40, 1.0), (500, 1.0)]:
        delays = [backoff_delay(config, retry, rng) for _ in range(200)]
        assert all(0.0 <= d <= cap for d in delays)
        assert max(delays) > cap / 2  # spread over the whole range, not pinned to the cap


async def test_retries_until_success() -> None:
    upstream = Upstream(503, 502, 200)
    response = await build(max_retries=3)(get(), upstream)
    assert response.status == 200 and upstream.attempts == 3
    # The failed attempts' responses were closed unread: nothing of them went anywhere.
    assert [body.closed for body in upstream.responses] == [True, True, False]


async def test_attempts_are_max_retries_plus_one_and_the_last_answer_is_returned() -> None:
    upstream = Upstream(503)
    response = await build(max_retries=2)(get(), upstream)
    assert response.status == 503 and upstream.attempts == 3
    assert not upstream.responses[-1].closed


async def test_connect_errors_are_retried_and_the_last_one_raised() -> None:
    upstream = Upstream(UpstreamConnectError("refused"), 200)
    assert (await build()(get(), upstream)).status == 200
    upstream = Upstream(UpstreamConnectError("refused"))
    with pytest.raises(UpstreamConnectError):
        await build(max_retries=1)(get(), upstream)
    assert upstream.attempts == 2


async def test_statuses_not_listed_are_returned_at_once() -> None:
    upstream = Upstream(500)
    assert (await build()(get(), upstream)).status == 500 and upstream.attempts == 1
    upstream = Upstream(500, 200)
    assert (await build(retry_on_statuses=[500])(get(), upstream)).status == 200


async def test_gateway_errors_other_than_listed_are_not_retried() -> None:
    upstream = Upstream(PayloadTooLarge("big"))
    with pytest.raises(PayloadTooLarge):
        await build()(get(), upstream)
    assert upstream.attempts == 1
    upstream = Upstream(GatewayTimeout("slow"), 200)
    assert (await build()(get(), upstream)).status == 200


async def test_a_small_body_is_replayed_byte_for_byte() -> None:
    upstream = Upstream(503, 503, 200)
    response = await build(max_retries=2)(post(b'{"model":', b'"m"}'), upstream)
    assert response.status == 200
    assert upstream.bodies == [b'{"model":"m"}'] * 3


async def test_a_body_past_max_replay_body_is_not_retried() -> None:
    upstream = Upstream(503, 200)
    response = await build(max_replay_body=8)(post(b"12345", b"67890"), upstream)
    assert response.status == 503 and upstream.attempts == 1
    assert upstream.bodies == [b"1234567890"]  # the first attempt still got all of it


async def test_an_unread_large_body_survives_a_connect_error() -> None:
    # Nothing of the body was sent before the connection failed, so it can still go in full.
    upstream = Upstream(UpstreamConnectError("refused"), 200)
    response = await build(max_replay_body=4)(post(b"12345", b"67890"), upstream)
    assert response.status == 200 and upstream.bodies == [b"", b"1234567890"]


async def test_idempotent_only_limits_status_retries_not_connect_retries() -> None:
    upstream = Upstream(503, 200)
    assert (await build(idempotent_only=True)(post(b"x"), upstream)).status == 503
    upstream = Upstream(UpstreamConnectError("refused"), 200)
    assert (await build(idempotent_only=True)(post(b"x"), upstream)).status == 200
    upstream = Upstream(UpstreamConnectTimeout("no SYN-ACK"), 200)  # nothing was sent either
    assert (await build(idempotent_only=True)(post(b"x"), upstream)).status == 200
    upstream = Upstream(503, 200)
    assert (await build(idempotent_only=True)(get(), upstream)).status == 200


async def test_the_attempt_number_is_visible_to_later_handlers() -> None:
    seen: list[int] = []

    async def upstream(request: Request) -> Response:
        seen.append(request.state["retry_attempt"])
        return Response(503 if len(seen) < 3 else 200, Headers(), iter_body(b""))

    await build(max_retries=5)(get(), upstream)
    assert seen == [0, 1, 2]
