"""api-key: header and query sources, env and file keys, constant-time comparison, stripping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from a3s_gateway.runtime.api import Headers, Request, Response
from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.common.auth import Unauthorized
from a3s_gateway.stdlib.middlewares import api_key as module
from a3s_gateway.stdlib.middlewares.api_key import ApiKey, ApiKeyConfig

pytestmark = pytest.mark.anyio


class Backend:
    def __init__(self) -> None:
        self.seen: list[Request] = []

    async def __call__(self, request: Request) -> Response:
        self.seen.append(request)
        return Response.text(200, "ok")


def build(env: dict[str, str] | None = None, **options: Any) -> ApiKey:
    ctx = BuildContext(node_id="middleware:auth", name="auth", env=env or {})
    config = ApiKeyConfig.model_validate(options)
    return ApiKey(config, ApiKey.new_state(config, ctx), ctx)


def request(target: str = "/v1/models", *headers: tuple[str, str]) -> Request:
    return Request("GET", target, Headers.from_pairs(headers))


async def test_a3s_config_accepts_listed_keys_and_strips_the_header() -> None:
    mw, backend = build(header="X-API-Key", keys=["secret-key-1", "secret-key-2"]), Backend()
    response = await mw(request("/", ("x-api-key", "secret-key-2"), ("accept", "*/*")), backend)
    assert response.status == 200
    forwarded = backend.seen[0]
    assert "x-api-key" not in forwarded.headers and forwarded.headers.get("accept") == "*/*"
    assert len(forwarded.state["api_key_id"]) == 16


@pytest.mark.parametrize("presented", [None, "", "secret-key-3", "secret-key-1x", "SECRET-KEY-1", "secret"])
async def test_missing_or_wrong_key_is_401(presented: str | None) -> None:
    mw, backend = build(keys=["secret-key-1"]), Backend()
    headers = [("x-api-key", presented)] if presented is not None else []
    with pytest.raises(Unauthorized) as error:
        await mw(request("/", *headers), backend)
    assert error.value.status == 401 and backend.seen == []


async def test_forward_key_keeps_it() -> None:
    backend = Backend()
    await build(keys=["k"], forward_key=True)(request("/", ("x-api-key", "k")), backend)
    assert backend.seen[0].headers.get("x-api-key") == "k"


async def test_query_param_is_accepted_and_removed_byte_exact() -> None:
    mw, backend = build(keys=["k 1"], query_param="api_key"), Backend()
    await mw(request("/search?q=a%2Fb&api_key=k+1&page=2"), backend)
    assert backend.seen[0].target == "/search?q=a%2Fb&page=2"
    await mw(request("/only?api_key=k%201"), backend)
    assert backend.seen[1].target == "/only"


async def test_bearer_scheme_for_openai_style_clients() -> None:
    mw, backend = build(header="Authorization", scheme="Bearer", keys=["sk-test"]), Backend()
    assert (await mw(request("/", ("authorization", "Bearer sk-test")), backend)).status == 200
    with pytest.raises(Unauthorized):
        await mw(request("/", ("authorization", "sk-test")), backend)


async def test_keys_from_env_and_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# team keys\nfile-key-1\n\n  file-key-2  \n")
    mw = build(env={"GW_KEYS": "env-a, env-b,,"}, keys_env="GW_KEYS", keys_file=str(path))
    for key in ("env-a", "env-b", "file-key-1", "file-key-2"):
        assert (await mw(request("/", ("x-api-key", key)), Backend())).status == 200
    with pytest.raises(Unauthorized):
        await mw(request("/", ("x-api-key", "# team keys")), Backend())


def test_env_var_unset_fails_the_build() -> None:
    with pytest.raises(ValueError, match="GW_NOPE"):
        build(keys_env="GW_NOPE")


def test_comparison_visits_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = module.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(module.hmac, "compare_digest", counting)
    mw = build(keys=["first", "second-much-longer-key", "third"])
    assert mw.matches("first")  # a match on the first key still compares all three
    assert len(calls) == 3
    calls.clear()
    assert not mw.matches("x")
    assert len(calls) == 3
    assert {len(a) for a, _ in calls} == {32}  # digests: the key length never reaches compare


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"keys": []},
        {"keys": [""]},
        {"keys": ["a"], "header": "X API Key"},
        {"keys_file": "/nonexistent/keys.txt"},
        {"keys": ["a"], "key": "typo"},
    ],
)
def test_config_errors_are_validation_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ApiKeyConfig.model_validate(options)
