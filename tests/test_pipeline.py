"""The single error boundary: GatewayErrors become JSON (or gRPC status) responses, anything else
a logged 500 without a traceback, and cancellation is never swallowed."""

from __future__ import annotations

import json

import anyio
import pytest

from a3s_gateway.runtime.api import Headers, Request, Response
from a3s_gateway.runtime.errors import GatewayTimeout, TooManyRequests
from a3s_gateway.runtime.pipeline import run_dispatch

pytestmark = pytest.mark.anyio


async def _body(response: Response) -> bytes:
    return b"".join([chunk async for chunk in response.body])


def _request(**headers: str) -> Request:
    return Request("GET", "/x", Headers.from_pairs(headers.items()), request_id="rid-1")


async def test_gateway_error_becomes_json_with_request_id() -> None:
    async def handler(request: Request) -> Response:
        raise TooManyRequests("slow down", headers=[("retry-after", "3")])

    response = await run_dispatch(handler, _request())
    assert response.status == 429 and response.headers.get("retry-after") == "3"
    payload = json.loads(await _body(response))
    assert payload == {
        "error": {"type": "rate_limited", "message": "slow down", "status": 429, "request_id": "rid-1"}
    }


async def test_unexpected_exception_is_a_500_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(request: Request) -> Response:
        raise ValueError("secret internals")

    response = await run_dispatch(handler, _request())
    body = (await _body(response)).decode()
    assert response.status == 500 and "secret" not in body and "Traceback" not in body
    assert json.loads(body)["error"]["request_id"] == "rid-1"
    assert "secret internals" in caplog.text  # the operator gets the details


async def test_grpc_requests_get_grpc_status_fields() -> None:
    async def handler(request: Request) -> Response:
        raise GatewayTimeout("upstream slow: 100%")

    response = await run_dispatch(handler, _request(**{"content-type": "application/grpc"}))
    assert response.status == 200
    assert response.headers.get("grpc-status") == "4"  # DEADLINE_EXCEEDED
    assert response.headers.get("grpc-message") == "upstream slow: 100%25"
    assert await _body(response) == b""


async def test_cancellation_passes_through() -> None:
    async def handler(request: Request) -> Response:
        await anyio.sleep_forever()
        raise AssertionError

    with anyio.move_on_after(0.01) as scope:
        await run_dispatch(handler, _request())
    assert scope.cancelled_caught
