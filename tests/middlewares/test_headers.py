"""headers: set / add / remove on both sides; "" removes as in Traefik; framing fields refused."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from a3s_gateway.runtime.api import Headers, Request, Response
from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.middlewares.headers import HeadersConfig, HeadersMiddleware

pytestmark = pytest.mark.anyio


class Backend:
    def __init__(self, *headers: tuple[str, str]) -> None:
        self.seen: list[Request] = []
        self.headers = headers

    async def __call__(self, request: Request) -> Response:
        self.seen.append(request)
        return Response.text(200, "ok", self.headers)


def build(**options: Any) -> HeadersMiddleware:
    ctx = BuildContext(node_id="middleware:h", name="h")
    return HeadersMiddleware(HeadersConfig.model_validate(options), None, ctx)


def request(*headers: tuple[str, str]) -> Request:
    return Request("GET", "/", Headers.from_pairs(headers))


async def test_a3s_maps_set_headers() -> None:
    mw = build(request_headers={"X-Forwarded-Proto": "https"}, response_headers={"X-Frame-Options": "DENY"})
    backend = Backend(("x-frame-options", "SAMEORIGIN"), ("x-frame-options", "ALLOW"))
    response = await mw(request(("x-forwarded-proto", "http"), ("X-Forwarded-Proto", "ftp")), backend)
    assert backend.seen[0].headers.get_all("x-forwarded-proto") == ["https"]
    assert response.headers.get_all("x-frame-options") == ["DENY"]


async def test_empty_value_removes() -> None:
    mw = build(request_headers={"X-Debug": ""}, response_headers={"Server": ""})
    backend = Backend(("server", "uvicorn"))
    response = await mw(request(("x-debug", "1"), ("accept", "*/*")), backend)
    assert "x-debug" not in backend.seen[0].headers and backend.seen[0].headers.get("accept") == "*/*"
    assert "server" not in response.headers


async def test_add_keeps_existing_values_and_accepts_lists() -> None:
    mw = build(
        add_request_headers={"X-Tag": ["a", "b"]}, add_response_headers={"Link": "</x.css>; rel=preload"}
    )
    backend = Backend(("link", "</y.js>; rel=preload"))
    response = await mw(request(("x-tag", "client")), backend)
    assert backend.seen[0].headers.get_all("x-tag") == ["client", "a", "b"]
    assert response.headers.get_all("link") == ["</y.js>; rel=preload", "</x.css>; rel=preload"]


async def test_remove_then_set_then_add() -> None:
    mw = build(
        remove_request_headers=["X-Internal-Token", "X-A"],
        request_headers={"X-A": "set"},
        add_request_headers={"X-A": "added"},
        remove_response_headers=["X-Powered-By"],
    )
    backend = Backend(("x-powered-by", "php"), ("X-Powered-By", "again"))
    response = await mw(request(("x-internal-token", "s3cr3t"), ("x-a", "client")), backend)
    assert "x-internal-token" not in backend.seen[0].headers
    assert backend.seen[0].headers.get_all("x-a") == ["set", "added"]
    assert "x-powered-by" not in response.headers


@pytest.mark.parametrize(
    "options",
    [
        {"request_headers": {"Bad Name": "x"}},
        {"request_headers": {"X-A": "line\r\nX-Injected: 1"}},
        {"response_headers": {"Content-Length": "0"}},
        {"add_request_headers": {"Transfer-Encoding": "chunked"}},
        {"remove_response_headers": ["Connection"]},
        {"add_response_headers": {"X-A": ["ok", "bad\n"]}},
        {"request_header": {"X-A": "typo"}},
    ],
)
def test_config_errors_are_validation_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        HeadersConfig.model_validate(options)
