"""The admin JSON API (api@internal) and ping@internal on a real gateway, over real sockets.

Every endpoint, basic-auth on the `api` block, reload with a good and a bad config (the old
graph keeps serving), 404/405/400, and nothing admin served unless configured.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import bcrypt
import httpx
import pytest

from a3s_gateway.runtime.admin import config as config_view
from a3s_gateway.runtime.admin import inventory
from a3s_gateway.runtime.gateway import Gateway

from .stubs import eventually, free_port, free_ports

pytestmark = pytest.mark.anyio

PASSWORD = "s3cret-admin"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
AUTH = ("admin", PASSWORD)


def config(web: int, admin: int, *, tag: str = "a") -> str:
    return f"""
entrypoints "web" {{
  address = "127.0.0.1:{web}"
}}

middlewares "admin-auth" {{
  type  = "basic-auth"
  users = ["admin:{HASH}"]
}}

middlewares "keys" {{
  type = "api-key"
  keys = ["sk-very-secret-key"]
}}

middlewares "tag" {{
  type             = "headers"
  response_headers = {{ "x-tag" = "{tag}" }}
  request_headers  = {{ "authorization" = "Bearer sk-header-secret" }}
}}

routers "chat" {{
  rule        = "PathPrefix(`/v1`)"
  service     = "llm"
  middlewares = ["tag"]
}}

routers "keyed" {{
  rule        = "PathPrefix(`/keyed`)"
  service     = "llm"
  middlewares = ["keys"]
}}

routers "scaled" {{
  rule    = "PathPrefix(`/scaled`)"
  service = "scaled"
}}

routers "canary" {{
  rule    = "PathPrefix(`/canary`)"
  service = "canary"
}}

services "llm" {{
  load_balancer {{
    servers = [{{ url = "demo://llm?token_delay=0.02" }}]
    sticky {{ cookie = "gw_affinity" }}
  }}
}}

services "scaled" {{
  load_balancer {{ servers = [{{ url = "demo://scaled" }}] }}
  scaling {{
    min_replicas   = 1
    buffer_timeout = "10s"
    executor       = "static"
  }}
}}

services "canary" {{
  revisions = [
    {{ name = "v1", traffic_percent = 100, servers = [{{ url = "demo://v1" }}] }},
    {{ name = "v2", traffic_percent = 0, servers = [{{ url = "demo://v2" }}] }},
  ]
  rollout {{
    from               = "v1"
    to                 = "v2"
    step_interval_secs = 3600
  }}
}}

api {{
  address     = "127.0.0.1:{admin}"
  middlewares = ["admin-auth"]
}}
"""


@dataclass
class Served:
    gateway: Gateway
    path: Path  # the configuration file, config(web, admin)
    web: int
    admin: int
    client: httpx.AsyncClient  # the web entrypoint
    api: httpx.AsyncClient  # /api/gateway on the admin address, with the credentials


@asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[Served]:
    """A gateway running config(web, admin), and a client of each of its two addresses."""
    web, admin = free_ports(2)
    path = tmp_path / "gw.hcl"
    path.write_text(config(web, admin))
    async with (
        Gateway(str(path)) as gateway,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{web}") as client,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{admin}/api/gateway", auth=AUTH) as api,
    ):
        yield Served(gateway, path, web, admin, client, api)


def chat(tokens: int = 3) -> dict[str, Any]:
    return {"model": "m", "max_tokens": tokens, "messages": [{"role": "user", "content": "hi"}]}


async def test_every_read_endpoint_answers_json_from_the_live_graph(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        client, api = served.client, served.api
        assert (await client.post("/v1/chat/completions", json=chat())).status_code == 200

        health = (await api.get("/health")).json()
        assert health["status"] == "ok" and health["state"] == "running" and health["generation"] == 1
        assert set(health["entrypoints"]) == {"web", "api"}
        assert health["services"]["llm"]["status"] == "up"
        assert health["services"]["llm"]["backends"][0]["healthy"] is True

        routes = {r["name"]: r for r in (await api.get("/routes")).json()}
        assert routes["chat"] == {
            "name": "chat",
            "rule": "PathPrefix(`/v1`)",
            "priority": routes["chat"]["priority"],
            "entrypoints": ["web"],
            "middlewares": ["tag"],
            "service": "llm",
            "internal": False,
        }
        assert routes["api@internal"]["entrypoints"] == ["api"]
        assert routes["api@internal"]["middlewares"] == ["admin-auth"]
        assert routes["ping@internal"]["service"] == "ping@internal" and routes["ping@internal"]["internal"]

        services = {s["name"]: s for s in (await api.get("/services")).json()}
        assert services["llm"]["status"] == "up" and services["llm"]["strategy"] == "round-robin"
        assert services["api@internal"]["kind"] == "internal"
        assert services["scaled"]["scaled"] is True

        backends = [b for b in (await api.get("/backends")).json() if b["service"] == "llm"]
        assert len(backends) == 1 and backends[0]["healthy"] and backends[0]["in_flight"] == 0
        assert backends[0]["open_connections"] >= 1  # the keep-alive connection of the chat above

        version = (await api.get("/version")).json()
        assert version["version"] and version["python"]

        scalers = (await api.get("/scalers")).json()
        assert [s["name"] for s in scalers] == ["scaled"] and scalers[0]["executor"] == "static"

        rollouts = (await api.get("/rollouts")).json()
        assert [r["service"] for r in rollouts] == ["canary"]
        assert rollouts[0]["rollout"]["to"] == "v2"

        graph = (await api.get("/graph")).json()
        ids = {n["id"] for n in graph["nodes"]}
        assert {
            "service:api@internal",
            "service:ping@internal",
            "router:api@internal",
            "entrypoint:api",
        } <= ids
        dot = await api.get("/graph", params={"format": "dot"})
        assert dot.headers["content-type"] == "text/vnd.graphviz"
        assert '"router:api@internal" -> "middleware:admin-auth"' in dot.text
        assert (await api.get("/graph", params={"format": "svg"})).status_code == 400


async def test_config_is_served_with_every_secret_redacted(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        api = served.api
        response = await api.get("/config")
        doc = response.json()
        assert doc["routers"]["chat"]["rule"] == "PathPrefix(`/v1`)"
        assert doc["middlewares"]["admin-auth"]["type"] == "basic-auth"
        assert doc["middlewares"]["admin-auth"]["users"].startswith("<redacted:")
        assert doc["middlewares"]["keys"]["keys"].startswith("<redacted:")
        # A header named for a credential is hidden, the others shown; a cookie's name is no secret.
        assert doc["middlewares"]["tag"]["request_headers"]["authorization"].startswith("<redacted:")
        assert doc["middlewares"]["tag"]["response_headers"] == {"x-tag": "a"}
        assert doc["services"]["llm"]["load_balancer"]["sticky"]["cookie"] == "gw_affinity"
        for text in (response.text, (await api.get("/graph")).text):
            for secret in (HASH, "sk-very-secret-key", "sk-header-secret"):
                assert secret not in text


async def test_in_flight_requests_are_counted_per_backend(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        client, api = served.client, served.api
        body = {**chat(tokens=400), "stream": True}
        async with client.stream("POST", "/v1/chat/completions", json=body) as streaming:
            assert streaming.status_code == 200
            llm = [b for b in (await api.get("/backends")).json() if b["service"] == "llm"]
            assert llm[0]["in_flight"] == 1
        seen: list[int] = []

        async def idle() -> None:
            backends = (await api.get("/backends")).json()
            seen[:] = [b["in_flight"] for b in backends if b["service"] == "llm"]

        with anyio.fail_after(10):
            await idle()
            while seen != [0]:
                await anyio.sleep(0.02)
                await idle()


async def test_each_backend_reports_its_latency_and_keeps_it_across_a_reload(tmp_path: Path) -> None:
    """Every exchange's time to the response head goes into its backend's window: /backends and
    /services show the p50, p99 and EWMA (null before the first exchange), and a reload
    that keeps the server keeps them."""
    async with serving(tmp_path) as served:
        client, api = served.client, served.api

        async def llm_latency() -> dict[str, Any]:
            [llm] = [b for b in (await api.get("/backends")).json() if b["service"] == "llm"]
            latency: dict[str, Any] = llm["latency"]
            return latency

        assert await llm_latency() == {"samples": 0, "p50_ms": None, "p99_ms": None, "ewma_ms": None}
        for _ in range(5):
            assert (await client.post("/v1/chat/completions", json=chat())).status_code == 200
        latency = await llm_latency()
        assert latency["samples"] == 5
        assert 0 < latency["p50_ms"] <= latency["p99_ms"] and latency["ewma_ms"] > 0
        services = {s["name"]: s for s in (await api.get("/services")).json()}
        assert services["llm"]["backends"][0]["latency"] == latency

        served.path.write_text(config(served.web, served.admin, tag="b"))
        assert (await api.post("/reload")).json()["status"] == "reloaded"
        assert await llm_latency() == latency  # the same server, the same live window


async def test_basic_auth_on_the_api_block_protects_every_internal_route(tmp_path: Path) -> None:
    async with (
        serving(tmp_path) as served,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{served.admin}") as anonymous,
    ):
        for url in ("/api/gateway/health", "/api/gateway/config", "/ping"):
            refused = await anonymous.get(url)
            assert refused.status_code == 401 and "www-authenticate" in refused.headers
            wrong = await anonymous.get(url, auth=("admin", "nope"))
            assert wrong.status_code == 401
        refused = await anonymous.post("/api/gateway/reload")
        assert refused.status_code == 401
        ping = await anonymous.get("/ping", auth=AUTH)
        assert ping.status_code == 200 and ping.json() == {"status": "ok"}


async def test_unknown_paths_wrong_methods_and_bad_bodies_get_json_errors(tmp_path: Path) -> None:
    async with (
        serving(tmp_path) as served,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{served.admin}", auth=AUTH) as api,
    ):
        for url in ("/api/gateway/nope", "/api/other", "/api/gateway/"):
            missing = await api.get(url)
            assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"
        wrong = await api.delete("/api/gateway/health")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD"
        assert wrong.json()["error"]["type"] == "method_not_allowed"
        get_reload = await api.get("/api/gateway/reload")
        assert get_reload.status_code == 405 and get_reload.headers["allow"] == "POST"
        ping = await api.post("/ping")
        assert ping.status_code == 405 and ping.headers["allow"] == "GET, HEAD"
        for body in (b"{not json", b"[1, 2]", b'{"file": "/etc/passwd"}', b"\xff\xfe"):
            bad = await api.post("/api/gateway/reload", content=body)
            assert bad.status_code == 400, body
            assert bad.json()["error"]["type"] == "bad_request"
            assert "Traceback" not in bad.text


async def test_head_is_answered_like_get_without_a_body(tmp_path: Path) -> None:
    """RFC 9110 §9.3.2: every GET endpoint answers HEAD, with GET's head and no body, so the
    next request on the same connection reads its own response."""
    async with serving(tmp_path) as served:
        token = base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode()
        head = f"Host: x\r\nAuthorization: Basic {token}\r\n\r\n"
        async with await anyio.connect_tcp("127.0.0.1", served.admin) as stream:
            await stream.send(f"HEAD /api/gateway/version HTTP/1.1\r\n{head}".encode())
            await stream.send(f"GET /ping HTTP/1.1\r\n{head}".encode())
            data = b""
            with anyio.fail_after(10):
                while not data.endswith(b'{"status":"ok"}'):
                    data += await stream.receive()
        first, _, rest = data.partition(b"\r\n\r\n")
        assert first.startswith(b"HTTP/1.1 200") and b"content-type: application/json" in first.lower()
        assert rest.startswith(b"HTTP/1.1 200"), rest[:80]


async def test_reload_applies_a_good_config_and_rejects_a_bad_one_with_diagnostics(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        gateway, path, client, api = served.gateway, served.path, served.client, served.api
        web, admin = served.web, served.admin
        assert (await client.post("/v1/chat/completions", json=chat())).headers["x-tag"] == "a"

        path.write_text(config(web, admin, tag="b"))
        done = await api.post("/reload", content=b"{}")
        assert done.status_code == 200, done.text
        result = done.json()
        assert result["status"] == "reloaded" and result["generation"] == 2
        assert "middleware:tag" in result["changes"]["changed"]
        assert gateway.graph.generation == 2
        assert (await client.post("/v1/chat/completions", json=chat())).headers["x-tag"] == "b"

        bad = config(web, admin, tag="b").replace('service     = "llm"', 'service     = "nowhere"', 1)
        path.write_text(bad)
        rejected = await api.post("/reload")
        assert rejected.status_code == 422
        report = rejected.json()
        assert report["status"] == "rejected" and report["errors"] == 1
        errors = [d for d in report["diagnostics"] if d["severity"] == "error"]
        line = bad.splitlines().index('  service     = "nowhere"') + 1
        assert errors[0]["file"] == str(path) and errors[0]["line"] == line and errors[0]["col"] == 3
        assert "unknown service 'nowhere'" in errors[0]["message"]
        # The old graph keeps serving, on both addresses.
        assert gateway.graph.generation == 2
        assert (await client.post("/v1/chat/completions", json=chat())).headers["x-tag"] == "b"
        assert (await api.get("/health")).json()["generation"] == 2


async def test_nothing_admin_is_served_unless_configured(tmp_path: Path) -> None:
    web, path = free_port(), tmp_path / "gw.hcl"
    path.write_text(f"""
entrypoints "web" {{ address = "127.0.0.1:{web}" }}
routers "all" {{
  rule    = "PathPrefix(`/`)"
  service = "llm"
}}
services "llm" {{ load_balancer {{ servers = [{{ url = "demo://plain" }}] }} }}
""")
    async with Gateway(str(path)), httpx.AsyncClient(base_url=f"http://127.0.0.1:{web}") as client:
        for url in ("/api/gateway/health", "/ping"):
            response = await client.get(url)
            assert "generation" not in response.text and response.json() != {"status": "ok"}


async def test_a_router_may_name_internal_services_on_any_entrypoint(tmp_path: Path) -> None:
    web, path = free_port(), tmp_path / "gw.hcl"
    path.write_text(f"""
entrypoints "web" {{ address = "127.0.0.1:{web}" }}
middlewares "local" {{
  type      = "ip-allow"
  allowed_ips = ["10.0.0.0/8"]
}}
routers "health" {{
  rule    = "Path(`/healthz`)"
  service = "ping@internal"
}}
routers "admin" {{
  rule        = "PathPrefix(`/api/gateway`)"
  service     = "api@internal"
  middlewares = ["local"]
}}
""")
    async with Gateway(str(path)), httpx.AsyncClient(base_url=f"http://127.0.0.1:{web}") as client:
        ping = await client.get("/healthz")
        assert ping.status_code == 200 and ping.json() == {"status": "ok"}
        assert (await client.head("/healthz")).status_code == 200
        # ip-allow protects api@internal: 127.0.0.1 is not in 10.0.0.0/8.
        assert (await client.get("/api/gateway/health")).status_code == 403


async def test_the_api_reads_the_generation_it_was_routed_on(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        gateway, path, api = served.gateway, served.path, served.api
        path.write_text(
            config(served.web, served.admin)
            + '\nrouters "late" {\n  rule = "Path(`/late`)"\n  service = "llm"\n}\n'
        )
        await gateway.reload()
        await eventually(lambda: gateway.graph.generation == 2)
        routes = {r["name"] for r in (await api.get("/routes")).json()}
        assert "late" in routes
        cfg = json.loads((await api.get("/config")).text)
        assert cfg["generation"] == 2 and "late" in cfg["routers"]


async def test_a_request_pinned_on_an_older_generation_reads_that_generation(tmp_path: Path) -> None:
    """An answer still being built on generation 1 when generation 2 is swapped in describes
    generation 1 throughout, its generation number included."""
    async with serving(tmp_path) as served:
        old = served.gateway.graph
        await served.gateway.reload()
        assert served.gateway.graph.generation == 2
        health = inventory.health(old, served.gateway)
        assert health["generation"] == 1 and health["reloads"] == 1
        assert config_view.active_config(old)["generation"] == 1
