"""The series an AI gateway adds, through a running gateway with real backends: time to first
byte, server-sent event streams, upstream connects, retries, denials by middleware, circuit
breakers, mirrors, scalers (replicas, cold starts) and rollouts (percentage, step, rollbacks)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.runtime.observe.meters import EventStreamMeter, RequestMeters
from a3s_gateway.runtime.observe.metrics import GatewayMetrics

from .stubs import eventually, free_port, refusing_port
from .test_scaling_e2e import front_of, gateway_for, scaled_config

pytestmark = pytest.mark.anyio

METRICS = "metrics {\n  prometheus {\n    add_routers_labels = true\n  }\n}\n"


def config(web: int, dead: int) -> str:
    return f"""
entrypoints "web" {{ address = "127.0.0.1:{web}" }}

middlewares "limit" {{
  type   = "rate-limit"
  rate   = 1
  period = "1h"
}}
middlewares "auth" {{
  type     = "basic-auth"
  username = "admin"
  password = "pw"
}}
middlewares "retry" {{
  type              = "retry"
  max_retries       = 2
  retry_interval_ms = 0
}}
middlewares "breaker" {{
  type              = "circuit-breaker"
  failure_threshold = 1
  cooldown_secs     = "1h"
}}

routers "chat" {{
  rule    = "PathPrefix(`/v1`)"
  service = "llm"
}}
routers "limited" {{
  rule        = "PathPrefix(`/v1`) && Header(`x-route`, `limited`)"
  service     = "llm"
  middlewares = ["limit"]
}}
routers "secret" {{
  rule        = "PathPrefix(`/v1`) && Header(`x-route`, `secret`)"
  service     = "llm"
  middlewares = ["auth"]
}}
routers "flaky" {{
  rule        = "PathPrefix(`/flaky`)"
  service     = "gone"
  middlewares = ["retry", "breaker"]
}}
routers "mirrored" {{
  rule    = "PathPrefix(`/v1`) && Header(`x-route`, `mirrored`)"
  service = "primary"
}}
routers "scaled" {{
  rule    = "PathPrefix(`/scaled`)"
  service = "scaled"
}}
routers "canary" {{
  rule    = "PathPrefix(`/v1`) && Header(`x-route`, `canary`)"
  service = "canary"
}}

services "llm" {{
  load_balancer {{ servers = [{{ url = "demo://llm?token_delay=0.001" }}] }}
}}
services "gone" {{
  load_balancer {{ servers = [{{ url = "http://127.0.0.1:{dead}" }}] }}
}}
services "primary" {{
  load_balancer {{ servers = [{{ url = "demo://primary" }}] }}
  mirror {{ service = "shadow" }}
}}
services "shadow" {{
  load_balancer {{ servers = [{{ url = "demo://shadow" }}] }}
}}
services "scaled" {{
  load_balancer {{ servers = [{{ url = "demo://scaled" }}] }}
  scaling {{
    min_replicas   = 1
    buffer_timeout = "10s"
    executor       = "static"
    tick_interval  = "50ms"
  }}
}}
services "canary" {{
  revisions = [
    {{ name = "v1", traffic_percent = 100, servers = [{{ url = "demo://v1" }}] }},
    {{ name = "v2", traffic_percent = 0, servers = [{{ url = "http://127.0.0.1:{dead}" }}] }},
  ]
  rollout {{
    from                 = "v1"
    to                   = "v2"
    step_percent         = 50
    step_interval_secs   = 0.2
    min_requests         = 1
  }}
}}
{METRICS}
"""


@asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[tuple[GatewayMetrics, httpx.AsyncClient, Gateway]]:
    web = free_port()
    with refusing_port() as dead:
        path = tmp_path / "gw.hcl"
        path.write_text(config(web, dead))
        async with (
            Gateway(str(path)) as gateway,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{web}", timeout=20) as client,
        ):
            assert gateway.metrics is not None
            yield gateway.metrics, client, gateway


def R(router: str) -> dict[str, str]:
    return {"x-route": router}


def v(metrics: GatewayMetrics, name: str, **labels: str) -> float | None:
    return metrics.value(f"a3s_gateway_{name}", labels)


async def test_event_streams_ttfb_and_connects(tmp_path: Path) -> None:
    async with serving(tmp_path) as (m, client, _gw):
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "one two three"}]}
        reply = await client.post("/v1/chat/completions", json=body)
        assert reply.status_code == 200
        raw = reply.content
        await client.get("/v1/models")
        route = {"router": "chat", "service": "llm"}
        assert v(m, "sse_events_total", **route) == raw.count(b"\n\n") > 3
        assert v(m, "sse_bytes_total", **route) == len(raw)
        assert v(m, "open_streams", **route) == 0
        assert v(m, "stream_duration_seconds_count", **route) == 1
        assert v(m, "router_time_to_first_byte_seconds_count", **route) == 2
        assert v(m, "service_time_to_first_byte_seconds_count", service="llm") == 2
        connects = v(m, "service_connect_duration_seconds_count", service="llm")
        assert connects is not None and connects >= 1


async def test_an_event_whose_blank_line_is_split_over_two_chunks_is_counted_once() -> None:
    # The upstream's reads cut a stream anywhere: here between the two newlines (and the CRLFs)
    # of each event's end.
    chunks = [b"data: a\n", b"\n", b"data: b\r\n\r", b"\n", b"data: c\n\ndata: d\r\n", b"\r\n", b"x"]

    async def upstream() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    metrics = GatewayMetrics((0.1,))
    route = RequestMeters(metrics, [], [("chat", "llm")], []).routes[("chat", "llm")]
    relayed = [chunk async for chunk in EventStreamMeter(upstream(), route, 0.0)]
    assert relayed == chunks
    assert v(metrics, "sse_events_total", router="chat", service="llm") == 4
    assert v(metrics, "sse_bytes_total", router="chat", service="llm") == len(b"".join(chunks))


async def test_an_open_stream_is_counted_while_it_lasts(tmp_path: Path) -> None:
    async with serving(tmp_path) as (m, client, _gw):
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "a " * 200}]}
        async with client.stream("POST", "/v1/chat/completions", json=body) as reply:
            async for _ in reply.aiter_bytes():
                assert v(m, "open_streams", router="chat", service="llm") == 1
                break
        await eventually(lambda: v(m, "open_streams", router="chat", service="llm") == 0)


async def test_denials_are_counted_by_middleware_never_by_client(tmp_path: Path) -> None:
    async with serving(tmp_path) as (m, client, _gw):
        assert (await client.get("/v1/models", headers=R("limited"))).status_code == 200
        assert (await client.get("/v1/models", headers=R("limited"))).status_code == 429
        assert (await client.get("/v1/models", headers=R("secret"))).status_code == 401
        assert (await client.get("/v1/models", headers=R("secret"), auth=("admin", "pw"))).status_code == 200
        assert (
            v(m, "middleware_denied_requests_total", middleware="limit", type="rate-limit", code="429") == 1
        )
        assert v(m, "middleware_denied_requests_total", middleware="auth", type="basic-auth", code="401") == 1
        text = m.exposition()[0].decode()
        assert "127.0.0.1" not in text.split("a3s_gateway_middleware_denied")[1].split("# HELP")[0]
        # The service counts only what got past the middlewares: 1 + 1 of the 4.
        ok = {"service": "llm", "code": "200", "method": "GET", "protocol": "http"}
        assert v(m, "service_requests_total", **ok) == 2
        assert v(m, "service_requests_total", **{**ok, "code": "429"}) is None


async def test_retries_and_an_open_breaker(tmp_path: Path) -> None:
    async with serving(tmp_path) as (m, client, _gw):
        assert (await client.get("/flaky")).status_code in (502, 503)
        assert v(m, "service_retries_total", service="gone") == 2
        opened = {"middleware": "breaker", "target": "gone", "state": "open"}
        assert v(m, "circuit_breaker_state", **opened) == 1
        assert v(m, "circuit_breaker_state", **{**opened, "state": "closed"}) == 0
        # The breaker refused the retries itself: its denials.
        denied = v(
            m, "middleware_denied_requests_total", middleware="breaker", type="circuit-breaker", code="503"
        )
        assert denied == 2


async def test_mirror_requests_are_counted(tmp_path: Path) -> None:
    async with serving(tmp_path) as (m, client, _gw):
        assert (await client.get("/v1/models", headers=R("mirrored"))).status_code == 200
        assert v(m, "mirror_requests_total", service="primary", mirror="shadow") == 1


async def test_scaler_and_rollout_state_and_a_rollback(tmp_path: Path) -> None:
    async with serving(tmp_path) as (m, client, gw):
        await eventually(lambda: v(m, "scaler_ready_replicas", scaler="scaled") == 1)
        assert v(m, "scaler_buffered_requests", scaler="scaled") == 0
        assert v(m, "scaler_panic_mode", scaler="scaled") in (0, 1)
        assert v(m, "scaler_starting_replicas", scaler="scaled") == 0
        # Its first decision (at the first tick) asks for min_replicas.
        await eventually(lambda: v(m, "scaler_desired_replicas", scaler="scaled") == 1)
        assert v(m, "rollout_percentage", service="canary", revision="v2") == 50
        assert v(m, "rollout_step", service="canary", revision="v2") == 1
        # v2 refuses every connection: the rollout rolls back.
        front = front_of(gw, "canary")
        assert front.revisions is not None

        async def rolled_back() -> None:
            while front.revisions is not None and front.revisions.state is not None:
                if front.revisions.state.finished:
                    return
                await client.get("/v1/models", headers={**R("canary"), "x-a3s-revision": "v2"})
                await anyio.sleep(0.05)

        with anyio.fail_after(15):
            await rolled_back()
        assert v(m, "rollout_rollbacks_total", service="canary") == 1
        assert v(m, "rollout_percentage", service="canary", revision="v2") == 0


async def test_a_cold_start_is_counted_and_timed(anyio_backend: object, tmp_path: Path) -> None:
    port = free_port()
    text = scaled_config(port, delay=0.3, timeout="20s") + METRICS
    async with gateway_for(tmp_path, text) as (gateway, client):
        m = gateway.metrics
        assert m is not None
        buffer = front_of(gateway).scaler.buffer  # type: ignore[union-attr]
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.get, "/v1/x")
            await eventually(lambda: buffer.statistics().queued == 1)
            assert v(m, "scaler_buffered_requests", scaler="llm") == 1
            assert v(m, "scaler_ready_replicas", scaler="llm") == 0
        assert v(m, "scaler_cold_starts_total", scaler="llm") == 1
        seconds = v(m, "scaler_cold_start_duration_seconds_sum", scaler="llm")
        assert seconds is not None and seconds > 0
        reply = json.loads((await client.get("/v1/x")).text)
        assert reply["n"] >= 1
        assert v(m, "scaler_cold_starts_total", scaler="llm") == 1  # warm: no second cold start
