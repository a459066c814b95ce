"""body-limit: 413 from Content-Length before reading; a streamed body is cut off at the limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError

from a3s_gateway.runtime.api import Headers, Request, Response
from a3s_gateway.runtime.errors import BadGateway, PayloadTooLarge
from a3s_gateway.stdlib import registry
from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.middlewares.body_limit import BodyLimit, BodyLimitConfig

pytestmark = pytest.mark.anyio


class Chunks:
    """A request body that records how far it was read and whether it was closed."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)
        self.read = 0
        self.closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self.read >= len(self.chunks):
            raise StopAsyncIteration
        self.read += 1
        return self.chunks[self.read - 1]

    async def aclose(self) -> None:
        self.closed = True


class Upstream:
    """Reads the whole body like the proxy does, then answers with its length."""

    def __init__(self, wrap_errors: bool = False) -> None:
        self.calls = 0
        self.received = b""
        self.wrap_errors = wrap_errors

    async def __call__(self, request: Request) -> Response:
        self.calls += 1
        try:
            async for chunk in request.body:
                self.received += chunk
        except PayloadTooLarge as exc:
            if self.wrap_errors:  # a proxy that reports an aborted upload its own way
                raise BadGateway("upstream request aborted") from exc
            raise
        return Response.text(200, str(len(self.received)))


def build(**options: Any) -> BodyLimit:
    ctx = BuildContext(node_id="middleware:limit", name="limit")
    config = BodyLimitConfig.model_validate(options)
    return BodyLimit(config, BodyLimit.new_state(config, ctx), ctx)


def req(body: Chunks, content_length: int | None = None) -> Request:
    headers = (
        [("content-length", str(content_length))]
        if content_length is not None
        else [("transfer-encoding", "chunked")]
    )
    return Request("POST", "/upload", Headers.from_pairs(headers), body=body, content_length=content_length)


def test_registered_with_the_a3s_key() -> None:
    kind = registry.lookup("middleware", "body-limit")
    assert kind is not None and kind.impl is BodyLimit
    assert BodyLimitConfig.model_validate({"max_body_bytes": 1048576}).max_body_bytes == 1048576
    assert BodyLimitConfig.model_validate({"max_body_bytes": "1MiB"}).max_body_bytes == 1048576
    assert BodyLimitConfig.model_validate({"max_body_bytes": "10KB"}).max_body_bytes == 10_000


@pytest.mark.parametrize(
    "options", [{}, {"max_body_bytes": -1}, {"max_body_bytes": "lots"}, {"max_bytes": 5}]
)
def test_bad_config_is_a_validation_error(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        BodyLimitConfig.model_validate(options)


async def test_content_length_over_the_limit_is_413_before_reading() -> None:
    body, upstream = Chunks(b"x" * 11), Upstream()
    with pytest.raises(PayloadTooLarge) as refused:
        await build(max_body_bytes=10)(req(body, content_length=11), upstream)
    assert refused.value.status == 413
    assert upstream.calls == 0 and body.read == 0


async def test_bodies_up_to_the_limit_pass_untouched() -> None:
    upstream = Upstream()
    response = await build(max_body_bytes=10)(req(Chunks(b"12345", b"67890"), content_length=10), upstream)
    assert response.status == 200 and upstream.received == b"1234567890"
    upstream = Upstream()
    await build(max_body_bytes=10)(req(Chunks(b"12345", b"67890")), upstream)
    assert upstream.received == b"1234567890"


async def test_streamed_body_is_cut_off_while_it_streams() -> None:
    body, upstream = Chunks(b"a" * 6, b"b" * 6, b"c" * 6), Upstream()
    with pytest.raises(PayloadTooLarge):
        await build(max_body_bytes=10)(req(body), upstream)
    # The upstream got what was under the limit, then an aborted stream; the rest was never read.
    assert upstream.received == b"a" * 6
    assert body.read == 2 and body.closed


async def test_a_wrapped_abort_still_reaches_the_client_as_413() -> None:
    with pytest.raises(PayloadTooLarge) as refused:
        await build(max_body_bytes=4)(req(Chunks(b"12", b"345")), Upstream(wrap_errors=True))
    assert isinstance(refused.value.__cause__, BadGateway)


async def test_an_answer_to_a_cut_off_request_is_replaced_by_413() -> None:
    class Early:
        """An upstream that swallows the abort and answers anyway."""

        async def __call__(self, request: Request) -> Response:
            try:
                async for _ in request.body:
                    pass
            except PayloadTooLarge:
                pass
            return Response.text(200, "partial")

    with pytest.raises(PayloadTooLarge):
        await build(max_body_bytes=4)(req(Chunks(b"123", b"456")), Early())
