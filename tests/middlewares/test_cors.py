"""cors: preflights answered at the gateway, simple requests, patterns, credentials, Vary."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from a3s_gateway.runtime.api import Headers, Request, Response
from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.middlewares.cors import Cors, CorsConfig, OriginMatcher

pytestmark = pytest.mark.anyio


class Backend:
    def __init__(self, *headers: tuple[str, str]) -> None:
        self.seen: list[Request] = []
        self.headers = headers

    async def __call__(self, request: Request) -> Response:
        self.seen.append(request)
        return Response.text(200, "ok", self.headers)


def build(**options: Any) -> Cors:
    ctx = BuildContext(node_id="middleware:cors", name="cors")
    return Cors(CorsConfig.model_validate(options), None, ctx)


def preflight(origin: str, method: str = "POST", headers: str | None = None) -> Request:
    pairs = [("origin", origin), ("access-control-request-method", method)]
    if headers is not None:
        pairs.append(("access-control-request-headers", headers))
    return Request("OPTIONS", "/v1/chat", Headers.from_pairs(pairs))


def simple(origin: str | None, method: str = "GET") -> Request:
    return Request(method, "/v1/chat", Headers.from_pairs([("origin", origin)] if origin else []))


A3S = {
    "allowed_origins": ["https://example.com"],
    "allowed_methods": ["GET", "POST"],
    "allowed_headers": ["Content-Type"],
    "max_age": 3600,
}


async def test_preflight_is_answered_at_the_gateway() -> None:
    backend = Backend()
    response = await build(**A3S)(preflight("https://example.com", "POST", "content-type"), backend)
    assert backend.seen == []
    assert response.status == 204
    h = response.headers
    assert h.get("access-control-allow-origin") == "https://example.com"
    assert h.get("access-control-allow-methods") == "GET, POST"
    assert h.get("access-control-allow-headers") == "Content-Type"
    assert h.get("access-control-max-age") == "3600"
    assert "access-control-allow-credentials" not in h
    assert "Origin" in (h.get("vary") or "")


async def test_preflight_from_disallowed_origin_is_403_without_cors_headers() -> None:
    backend = Backend()
    response = await build(**A3S)(preflight("https://evil.example"), backend)
    assert response.status == 403 and backend.seen == []
    assert not any(name.startswith("access-control-") for name, _ in response.headers.items())


async def test_options_without_request_method_is_not_a_preflight() -> None:
    backend = Backend()
    response = await build(**A3S)(simple("https://example.com", "OPTIONS"), backend)
    assert len(backend.seen) == 1
    assert response.headers.get("access-control-allow-origin") == "https://example.com"


async def test_simple_request_from_allowed_origin() -> None:
    backend = Backend(
        ("access-control-allow-origin", "https://upstream.example"), ("vary", "Accept-Encoding")
    )
    response = await build(**A3S, expose_headers=["X-Request-Id"])(simple("https://example.com"), backend)
    assert response.status == 200 and len(backend.seen) == 1
    h = response.headers
    assert h.get_all("access-control-allow-origin") == ["https://example.com"]  # replaces the backend's
    assert h.get("access-control-expose-headers") == "X-Request-Id"
    assert h.get_all("vary") == ["Accept-Encoding", "Origin"]


async def test_simple_request_from_disallowed_origin_gets_no_cors_headers() -> None:
    response = await build(**A3S)(simple("https://evil.example"), Backend())
    assert response.status == 200
    assert "access-control-allow-origin" not in response.headers
    assert response.headers.get("vary") == "Origin"


async def test_no_origin_passes_untouched_but_varies() -> None:
    response = await build(**A3S)(simple(None), Backend())
    assert "access-control-allow-origin" not in response.headers and response.headers.get("vary") == "Origin"


async def test_vary_is_not_duplicated() -> None:
    response = await build()(simple("https://a.example"), Backend(("vary", "origin, accept")))
    assert response.headers.get_all("vary") == ["origin, accept"]


async def test_a3s_defaults_any_origin() -> None:
    mw = build()
    response = await mw(preflight("https://anything.example", "DELETE"), Backend())
    assert response.headers.get("access-control-allow-origin") == "*"
    assert response.headers.get("access-control-allow-methods") == "GET, POST, PUT, DELETE, OPTIONS"
    assert response.headers.get("access-control-allow-headers") == "Content-Type, Authorization"
    assert response.headers.get("access-control-max-age") == "86400"
    assert (await mw(simple("https://x.example"), Backend())).headers.get(
        "access-control-allow-origin"
    ) == "*"


async def test_credentials_never_answer_a_wildcard() -> None:
    mw = build(allowed_origins=["*"], allowed_methods=["*"], allowed_headers=["*"], allow_credentials=True)
    response = await mw(preflight("https://app.example", "PATCH", "x-a, x-b"), Backend())
    h = response.headers
    assert h.get("access-control-allow-origin") == "https://app.example"
    assert h.get("access-control-allow-methods") == "PATCH"
    assert h.get("access-control-allow-headers") == "x-a, x-b"
    assert h.get("access-control-allow-credentials") == "true"
    actual = await mw(simple("https://app.example"), Backend())
    assert actual.headers.get("access-control-allow-origin") == "https://app.example"
    assert actual.headers.get("access-control-allow-credentials") == "true"


async def test_wildcards_without_credentials_stay_wildcards() -> None:
    mw = build(allowed_methods=["*"], allowed_headers=["*"])
    h = (await mw(preflight("https://app.example", "PATCH", "x-a"), Backend())).headers
    assert h.get("access-control-allow-methods") == "*" and h.get("access-control-allow-headers") == "*"


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://a.example.com", True),
        ("https://a.b.example.com", True),
        ("https://A.Example.COM", True),
        ("https://example.com", False),
        ("http://a.example.com", False),
        ("https://a.example.com.evil.net", False),
        ("https://evil.net/.example.com", False),
        ("https://evil.net@a.example.com", False),
        ("https://app.io", True),
        ("https://app.io:8443", False),
        ("http://localhost:3000", True),
        ("http://localhost", False),
        ("null", False),
    ],
)
def test_origin_patterns(origin: str, allowed: bool) -> None:
    matcher = OriginMatcher(["https://*.example.com", "https://app.io", "http://localhost:*"])
    assert matcher.allows(origin) is allowed


@pytest.mark.parametrize(
    "options",
    [
        {"allowed_origins": ["example.com"]},
        {"allowed_origins": ["https://example.com/"]},
        {"allowed_origins": ["https://example.com/path"]},
        {"allowed_methods": ["GET POST"]},
        {"allowed_headers": ["Content Type"]},
        {"max_age": "forever"},
        {"allowed_origin": ["*"]},
    ],
)
def test_config_errors_are_validation_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CorsConfig.model_validate(options)
