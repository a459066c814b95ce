"""End to end: each of jwt, api-key, basic-auth, forward-auth, cors, headers, strip-prefix and
ip-allow configured in HCL, compiled, served by a running Gateway and called with httpx.

The backend is a small echo server started in the test (it answers every request with the method,
target and headers it received), so each test sees exactly what the middleware forwarded.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import jwt as pyjwt
import pytest

from a3s_gateway.compiler import compile_config, render_text
from a3s_gateway.runtime.api import Headers
from a3s_gateway.runtime.gateway import Gateway

from ..stubs import free_port
from .http_peer import PeerRequest, Reply, http_peer

pytestmark = pytest.mark.anyio

SECRET = "an-e2e-hmac-secret-that-is-long-enough-for-hs256-and-more"
Answer = Callable[[str, str, Headers], Awaitable[Reply]]


@asynccontextmanager
async def http_server(answer: Answer) -> AsyncIterator[tuple[int, list[PeerRequest]]]:
    """A small HTTP/1.1 server answering with `answer(method, target, headers)`."""
    async with http_peer(lambda r: answer(r["method"], r["target"], r["headers"])) as (port, seen):
        yield port, seen


async def echo(method: str, target: str, headers: Headers) -> Reply:
    body = json.dumps({"method": method, "target": target, "headers": list(headers.items())}).encode()
    return 200, [("content-type", "application/json"), ("server", "echo")], body


@asynccontextmanager
async def gateway(
    tmp_path: Path, middlewares: str, routers: str | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """Echo backend + Gateway with `middlewares` (HCL) in front; yields a client for it."""
    async with http_server(echo) as (echo_port, _):
        port = free_port()
        routers = (
            routers
            or """
routers "all" {
  rule        = "PathPrefix(`/`)"
  service     = "echo"
  middlewares = ["mw"]
}
"""
        )
        path = tmp_path / "gateway.hcl"
        path.write_text(
            f"""
entrypoints "web" {{
  address = "127.0.0.1:{port}"
}}

services "echo" {{
  load_balancer {{
    servers = [{{ url = "http://127.0.0.1:{echo_port}" }}]
  }}
}}
{routers}
{middlewares}
"""
        )
        async with (
            Gateway(str(path)),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
        ):
            yield client


def seen(response: httpx.Response) -> dict[str, Any]:
    """What the echo backend received: {"method", "target", "headers": {name: [values]}}."""
    data = response.json()
    headers: dict[str, list[str]] = {}
    for name, value in data["headers"]:
        headers.setdefault(name, []).append(value)
    return {"method": data["method"], "target": data["target"], "headers": headers}


async def test_jwt(tmp_path: Path) -> None:
    config = f"""
middlewares "mw" {{
  type     = "jwt"
  value    = "{SECRET}"
  audience = "llm-api"
}}
"""
    async with gateway(tmp_path, config) as client:
        missing = await client.get("/v1/models")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == 'Bearer realm="a3s-gateway"'
        wrong = await client.get("/v1/models", headers={"authorization": "Bearer x.y.z"})
        assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
        good = pyjwt.encode(
            {"sub": "alice", "aud": "llm-api", "exp": 4_102_444_800}, SECRET, algorithm="HS256"
        )
        response = await client.get("/v1/models", headers={"authorization": f"Bearer {good}"})
        assert response.status_code == 200
        assert seen(response)["headers"]["x-jwt-subject"] == ["alice"]


async def test_api_key(tmp_path: Path) -> None:
    config = """
middlewares "mw" {
  type   = "api-key"
  header = "X-API-Key"
  keys   = ["secret-key-1", "secret-key-2"]
}
"""
    async with gateway(tmp_path, config) as client:
        assert (await client.get("/v1/models")).status_code == 401
        assert (await client.get("/v1/models", headers={"x-api-key": "nope"})).status_code == 401
        response = await client.get("/v1/models", headers={"x-api-key": "secret-key-2"})
        assert response.status_code == 200
        assert "x-api-key" not in seen(response)["headers"]


async def test_basic_auth(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"wonderland", bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$")
    config = f"""
middlewares "mw" {{
  type          = "basic-auth"
  users         = ["alice:{hashed}"]
  realm         = "team"
  header_field  = "X-Auth-User"
  remove_header = true
}}
"""
    async with gateway(tmp_path, config) as client:
        refused = await client.get("/", auth=("alice", "wrong"))
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == 'Basic realm="team"'
        response = await client.get("/", auth=("alice", "wonderland"))
        assert response.status_code == 200
        forwarded = seen(response)["headers"]
        assert forwarded["x-auth-user"] == ["alice"] and "authorization" not in forwarded


async def test_forward_auth(tmp_path: Path) -> None:
    async def auth(method: str, target: str, headers: Headers) -> Reply:
        if headers.get("x-token") == "good" and headers.get("x-forwarded-uri") == "/private?x=1":
            return 200, [("X-User-Id", "u-42")], b""
        return 401, [("content-type", "text/plain")], b"go away"

    async with http_server(auth) as (auth_port, auth_hits):
        config = f"""
middlewares "mw" {{
  type                          = "forward-auth"
  forward_auth_url              = "http://127.0.0.1:{auth_port}/verify"
  forward_auth_response_headers = ["X-User-Id"]
}}
"""
        async with gateway(tmp_path, config) as client:
            denied = await client.get("/private?x=1", headers={"x-token": "bad"})
            assert denied.status_code == 401 and denied.text == "go away"
            response = await client.get("/private?x=1", headers={"x-token": "good", "x-user-id": "forged"})
            assert response.status_code == 200
            assert seen(response)["headers"]["x-user-id"] == ["u-42"]
        assert [r["target"] for r in auth_hits] == ["/verify", "/verify"]


async def test_cors(tmp_path: Path) -> None:
    config = """
middlewares "mw" {
  type            = "cors"
  allowed_origins = ["https://*.example.com"]
  allowed_methods = ["GET", "POST"]
  allowed_headers = ["Content-Type"]
  max_age         = 3600
}
"""
    async with gateway(tmp_path, config) as client:
        origin = {"origin": "https://app.example.com"}
        preflight = await client.options(
            "/v1/chat", headers={**origin, "access-control-request-method": "POST"}
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
        assert preflight.headers["access-control-max-age"] == "3600"
        evil = await client.options(
            "/v1/chat", headers={"origin": "https://evil.net", "access-control-request-method": "POST"}
        )
        assert evil.status_code == 403 and "access-control-allow-origin" not in evil.headers
        response = await client.get("/v1/models", headers=origin)
        assert response.status_code == 200 and seen(response)["method"] == "GET"
        assert response.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "Origin" in response.headers["vary"]


async def test_headers(tmp_path: Path) -> None:
    config = """
middlewares "mw" {
  type             = "headers"
  request_headers  = { "X-Env" = "prod", "X-Debug" = "" }
  response_headers = { "X-Frame-Options" = "DENY", "Server" = "" }
}
"""
    async with gateway(tmp_path, config) as client:
        response = await client.get("/", headers={"x-debug": "1", "x-env": "dev"})
        assert response.status_code == 200
        forwarded = seen(response)["headers"]
        assert forwarded["x-env"] == ["prod"] and "x-debug" not in forwarded
        assert response.headers["x-frame-options"] == "DENY" and "server" not in response.headers


async def test_strip_prefix(tmp_path: Path) -> None:
    config = """
middlewares "mw" {
  type     = "strip-prefix"
  prefixes = ["/api"]
}
"""
    async with gateway(tmp_path, config) as client:
        response = await client.get("/api/v1/models?limit=2")
        assert response.status_code == 200
        received = seen(response)
        assert received["target"] == "/v1/models?limit=2"
        assert received["headers"]["x-forwarded-prefix"] == ["/api"]


async def test_ip_allow(tmp_path: Path) -> None:
    routers = """
routers "open" {
  rule        = "PathPrefix(`/open`)"
  service     = "echo"
  middlewares = ["local"]
}

routers "closed" {
  rule        = "PathPrefix(`/closed`)"
  service     = "echo"
  middlewares = ["office"]
}
"""
    config = """
middlewares "local" {
  type        = "ip-allow"
  allowed_ips = ["127.0.0.0/8", "::1"]
}

middlewares "office" {
  type        = "ip-allow"
  allowed_ips = ["10.0.0.0/8", "2001:db8::/32"]
}
"""
    async with gateway(tmp_path, config, routers) as client:
        assert (await client.get("/open")).status_code == 200
        closed = await client.get("/closed", headers={"x-forwarded-for": "10.1.2.3"})
        assert closed.status_code == 403
        assert closed.json()["error"]["type"] == "forbidden"


# ------------------------------------------------------------------ the documented examples compile

KINDS = ["jwt", "api_key", "basic_auth", "forward_auth", "cors", "headers", "strip_prefix", "ip_allow"]
DOCS = Path(__file__).resolve().parents[1] / "data" / "a3s_docs"


def _examples(module: str) -> str:
    doc = importlib.import_module(f"a3s_gateway.stdlib.middlewares.{module}").__doc__ or ""
    blocks = re.findall(r"```hcl\n(.*?)```", doc, re.S)
    assert blocks, f"{module}: the docstring has no ```hcl example"
    return "\n".join(blocks)


@pytest.mark.parametrize("module", KINDS)
def test_docstring_examples_compile(tmp_path: Path, module: str) -> None:
    path = tmp_path / "example.hcl"
    path.write_text(
        'entrypoints "web" {\n  address = "127.0.0.1:8080"\n}\n'
        'services "s" {\n  load_balancer {\n    servers = [{ url = "http://127.0.0.1:9" }]\n  }\n}\n'
        + _examples(module)
    )
    result = compile_config([str(path)], env={"JWT_SECRET": SECRET, "ADMIN_PASSWORD": "pw"})
    assert result.graph is not None, render_text(result.diagnostics, result.sources)
    assert result.graph.by_kind("middleware")


def test_a3s_middleware_snippets_compile(tmp_path: Path) -> None:
    snippet = (DOCS / "13-rustdoc-middlewares-auth-ratelimit.hcl").read_text()
    quickstart = (DOCS / "01-quickstart-llm.hcl").read_text()
    jwt_line = next(line for line in quickstart.splitlines() if line.startswith('middlewares "auth-jwt"'))
    path = tmp_path / "a3s.hcl"
    path.write_text(
        'entrypoints "web" {\n  address = "127.0.0.1:8080"\n}\n'
        'services "s" {\n  load_balancer {\n    servers = [{ url = "http://127.0.0.1:9" }]\n  }\n}\n'
        f"{snippet}\n{jwt_line}\n"
    )
    result = compile_config([str(path)], env={"JWT_SECRET": SECRET})
    assert result.graph is not None, render_text(result.diagnostics, result.sources)
    names = {node.name: node.attrs["type"] for node in result.graph.by_kind("middleware")}
    assert names["auth"] == "api-key" and names["auth-jwt"] == "jwt"


def test_config_errors_point_at_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.hcl"
    path.write_text(
        'entrypoints "web" {\n  address = "127.0.0.1:8080"\n}\n'
        'middlewares "ip" {\n  type        = "ip-allow"\n  allowed_ips = ["10.0.0.0/33"]\n}\n'
        'middlewares "jwt" {\n  type       = "jwt"\n  value      = "s3cret-s3cret-s3cret-s3cret-s3cret"\n'
        '  algorithms = ["none"]\n}\n'
        'middlewares "cors" {\n  type           = "cors"\n  allowed_origin = ["*"]\n}\n'
    )
    result = compile_config([str(path)], env={})
    assert result.graph is None
    text = render_text(result.diagnostics, result.sources)
    assert "10.0.0.0/33" in text and '"none"' in text and "allowed_origins" in text
    lines = {d.span.line for d in result.diagnostics if d.span is not None}
    assert {6, 11, 15} <= lines, text
