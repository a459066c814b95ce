"""strip-prefix: Traefik semantics (first match in order, character prefix), query kept, header set."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from a3s_gateway.runtime.api import Headers, Request, Response
from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.middlewares.strip_prefix import StripPrefix, StripPrefixConfig, strip

pytestmark = pytest.mark.anyio


class Backend:
    def __init__(self) -> None:
        self.seen: list[Request] = []

    async def __call__(self, request: Request) -> Response:
        self.seen.append(request)
        return Response.text(200, "ok")


def build(*prefixes: str) -> StripPrefix:
    ctx = BuildContext(node_id="middleware:s", name="s")
    return StripPrefix(StripPrefixConfig(prefixes=list(prefixes)), None, ctx)


@pytest.mark.parametrize(
    ("target", "expected", "prefix"),
    [
        ("/api/v1/chat?stream=true", "/v1/chat?stream=true", "/api"),
        ("/api", "/", "/api"),
        ("/api/", "/", "/api"),
        ("/apiary", "/ary", "/api"),  # a character prefix, as in Traefik
        ("/api?x=1", "/?x=1", "/api"),
        ("/api?", "/?", "/api"),
        ("/other/api", "/other/api", None),
    ],
)
async def test_strip(target: str, expected: str, prefix: str | None) -> None:
    backend = Backend()
    await build("/api")(
        Request("GET", target, Headers.from_pairs([("x-forwarded-prefix", "/spoof")])), backend
    )
    forwarded = backend.seen[0]
    assert forwarded.target == expected
    assert forwarded.headers.get_all("x-forwarded-prefix") == ([prefix] if prefix else ["/spoof"])


def test_first_match_in_config_order_wins() -> None:
    assert strip("/api/v1/x", ["/api", "/api/v1"]) == ("/v1/x", "/api")
    assert strip("/api/v1/x", ["/api/v1", "/api"]) == ("/x", "/api/v1")
    assert strip("/apiary", ["/api/", "/apiary"]) == ("/", "/apiary")


async def test_chained_strips_accumulate_the_forwarded_prefix() -> None:
    backend = Backend()

    async def second(request: Request) -> Response:
        return await build("/v1")(request, backend)

    await build("/api/")(Request("GET", "/api/v1/models", Headers()), second)
    assert backend.seen[0].target == "/models"
    assert backend.seen[0].headers.get_all("x-forwarded-prefix") == ["/api/v1"]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"prefixes": []},
        {"prefixes": ["api"]},
        {"prefixes": ["/a b"]},
        {"prefixes": ["/a?x"]},
        {"prefix": ["/a"]},
    ],
)
def test_config_errors_are_validation_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        StripPrefixConfig.model_validate(options)
