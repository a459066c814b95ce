"""agent_health: model servers' readiness (stdlib/health/agent.py).

The readings are pure functions of a status and a body, tested on the servers' own answers. The
walk runs a real gateway in front of two real backend processes playing vLLM, llama.cpp, TGI or a
generic JSON server (tests/model_server_stub.py), moved through Loading, Ready, Busy, Error and
Unreachable: which backend takes the traffic in each state, that Loading moves no failure
counter, and the states in the admin API and the metrics.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from a3s_gateway.compiler import compile_config
from a3s_gateway.compiler.schema import AgentHealthConfig
from a3s_gateway.runtime.api import Backend
from a3s_gateway.runtime.clock import ManualClock
from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.stdlib.health.agent import (
    BUSY,
    ERROR,
    LOADING,
    READY,
    AgentHealthChecker,
    json_status,
    llamacpp_health,
    queue_length,
    tgi_info,
    vllm_models,
)

from .stubs import Children, eventually, free_port, free_ports

STUB = Path(__file__).with_name("model_server_stub.py")

# --------------------------------------------------------------------------- the readings


@pytest.mark.parametrize(
    ("status", "body", "state"),
    [
        (200, b'{"status":"ok"}', READY),
        (503, b'{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}', LOADING),
        (503, b'{"status": "loading model"}', LOADING),  # llama.cpp before the OpenAI-style errors
        (503, b'{"status":"no slot available","slots_idle":0,"slots_processing":4}', BUSY),
        (500, b'{"status":"error"}', ERROR),
        (503, b"", ERROR),
    ],
)
def test_llamacpp_health(status: int, body: bytes, state: str) -> None:
    assert llamacpp_health(status, body) == state


def test_vllm_models() -> None:
    listed = b'{"object":"list","data":[{"id":"m1","object":"model"}]}'
    assert vllm_models(200, listed, None) == READY
    assert vllm_models(200, listed, "m1") == READY
    assert vllm_models(200, listed, "m2") == LOADING  # not that model (yet)
    assert vllm_models(200, b'{"object":"list","data":[]}', None) == LOADING
    assert vllm_models(500, b"", None) == ERROR
    assert vllm_models(200, b"<html>", None) == ERROR


def test_tgi_info() -> None:
    info = b'{"model_id":"bigscience/bloom-560m","max_concurrent_requests":128}'
    assert tgi_info(200, info, None) == READY
    assert tgi_info(200, info, "bigscience/bloom-560m") == READY
    assert tgi_info(200, info, "other") == ERROR
    assert tgi_info(503, b"", None) == LOADING


def test_json_status() -> None:
    assert json_status(b'{"status":"OK"}') == (READY, None)
    assert json_status(b'{"status":"loading"}') == (LOADING, None)
    assert json_status(b'{"status":"busy","queue":3}') == (BUSY, 3.0)
    assert json_status(b'{"status":"exploded"}') == (ERROR, None)
    assert json_status(b'{"queue":true,"status":"ok"}') == (READY, None)
    assert json_status(b"not json") == (ERROR, None)
    assert json_status(b"[1]") == (ERROR, None)


def test_queue_length_sums_a_gauge_and_ignores_the_rest() -> None:
    text = (
        "# TYPE vllm:num_requests_waiting gauge\n"
        'vllm:num_requests_waiting{model_name="a"} 3\n'
        'vllm:num_requests_waiting{model_name="b"} 4\n'
        "# TYPE vllm:num_requests_running gauge\n"
        "vllm:num_requests_running 50\n"
    )
    assert queue_length(text, "vllm:num_requests_waiting") == 7
    assert queue_length(text, "tgi_queue_size") is None
    assert queue_length("{{{ not prometheus", "tgi_queue_size") is None


def test_loading_moves_no_failure_streak() -> None:
    """A Loading probe is no failure: the streak towards `unhealthy_threshold` stays where it is."""
    config = AgentHealthConfig(server="json", unhealthy_threshold=2)
    checker = AgentHealthChecker(config, clock=ManualClock())
    backend = Backend("http://a")
    checker.track([backend], 0.0)
    checker.record(backend, False, 1.0)  # one failure: streak 1
    checker._states[backend.key] = LOADING
    for t in range(2, 6):
        checker.record(backend, None, float(t))
    target = checker._targets[backend.key]
    assert (target.state.healthy, target.state.streak) == (True, 1)
    assert not backend.healthy  # but no traffic while loading
    checker._states[backend.key] = READY
    checker.record(backend, True, 7.0)
    assert backend.healthy and target.state.streak == 0


def compile_errors(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "gw.hcl").write_text(text)
    return [d.message for d in compile_config([str(tmp_path / "gw.hcl")], {}).diagnostics.errors]


def test_agent_health_and_health_check_are_exclusive(tmp_path: Path) -> None:
    text = """
entrypoints "web" { address = ":8080" }
routers "r" {
  rule    = "PathPrefix(`/`)"
  service = "s"
}
services "s" {
  load_balancer {
    servers = [{ url = "http://127.0.0.1:1" }]
    health_check { path = "/health" }
    agent_health { server = "vllm" }
  }
}
"""
    messages = compile_errors(tmp_path, text)
    assert any("health_check and agent_health are both active checks" in m for m in messages), messages


def test_agent_health_is_for_http_services(tmp_path: Path) -> None:
    text = """
entrypoints "tcp" {
  address  = ":5432"
  protocol = "tcp"
}
tcp_routers "db" {
  rule    = "HostSNI(`*`)"
  service = "db"
}
services "db" {
  load_balancer {
    servers = [{ address = "10.0.0.5:5432" }]
    agent_health { server = "vllm" }
  }
}
"""
    messages = compile_errors(tmp_path, text)
    assert messages == ["service 'db': 'agent_health' applies to HTTP services only"], messages


# --------------------------------------------------------------------------- the walk


class Stubs(Children):
    """Model-server processes by name."""

    def __init__(self, flavor: str) -> None:
        super().__init__()
        self.flavor = flavor
        self.ports: dict[str, int] = {}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports.setdefault(name, free_port())}"

    def start(self, name: str, state: str) -> None:
        argv = [sys.executable, str(STUB), "--flavor", self.flavor, "--name", name, "--state", state]
        self.spawn(name, [*argv, "--port", self.url(name).rsplit(":", 1)[1]])

    async def move(self, name: str, state: str) -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            (await client.post(f"{self.url(name)}/_state", content=state)).raise_for_status()


@pytest.fixture
def stubs(request: pytest.FixtureRequest) -> Iterator[Stubs]:
    made = Stubs(request.param)
    try:
        yield made
    finally:
        made.close()


def config(web: int, api: int, stubs: Stubs) -> str:
    return f"""
entrypoints "web" {{ address = "127.0.0.1:{web}" }}
api {{ address = "127.0.0.1:{api}" }}
metrics {{
  prometheus {{}}
}}
routers "all" {{
  rule    = "PathPrefix(`/`)"
  service = "llm"
}}
services "llm" {{
  load_balancer {{
    servers = [{{ url = "{stubs.url("a")}" }}, {{ url = "{stubs.url("b")}" }}]
    agent_health {{
      server              = "{stubs.flavor}"
      model               = "{"stub-model" if stubs.flavor in ("vllm", "tgi") else ""}"
      busy_queue          = 5
      interval            = "50ms"
      timeout             = "2s"
      unhealthy_threshold = 1
    }}
    passive_health {{ max_failures = 1 }}
  }}
}}
""".replace('      model               = ""\n', "")


@asynccontextmanager
async def running(tmp_path: Path, stubs: Stubs) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient, str]]:
    web, api = free_ports(2)
    path = tmp_path / "gw.hcl"
    path.write_text(config(web, api, stubs))
    async with (
        Gateway(str(path)) as gateway,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{web}", timeout=30, trust_env=False) as client,
    ):
        yield gateway, client, f"http://127.0.0.1:{api}"


async def served_by(client: httpx.AsyncClient, n: int = 8) -> set[str]:
    names = set()
    for _ in range(n):
        response = await client.get("/v1/chat")
        assert response.status_code == 200, response.text
        names.add(response.json()["backend"])
    return names


async def admin_states(client: httpx.AsyncClient, api: str) -> dict[str, str]:
    health = (await client.get(f"{api}/api/gateway/health")).json()
    return {b["url"]: b["agent_state"] for b in health["services"]["llm"]["backends"]}


async def metric_states(client: httpx.AsyncClient, api: str) -> dict[str, str]:
    text = (await client.get(f"{api}/metrics")).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "a3s_gateway_service_server_agent_state" and s.value == 1.0:
                out[s.labels["url"]] = s.labels["state"]
    return out


@pytest.mark.anyio
@pytest.mark.parametrize("stubs", ["vllm", "llama.cpp", "tgi", "json"], indirect=True)
async def test_backends_walk_through_the_states(anyio_backend: object, tmp_path: Path, stubs: Stubs) -> None:
    stubs.start("a", "loading")
    stubs.start("b", "ready")
    a, b = stubs.url("a"), stubs.url("b")
    async with running(tmp_path, stubs) as (gateway, client, api):
        health = gateway.graph.services["llm"].health

        async def states(want: dict[str, str]) -> None:
            await eventually(lambda: {u: health.state(u) for u in want} == want, timeout=30)

        # Loading: no traffic, and no failure counted anywhere.
        await states({a: LOADING, b: READY})
        assert await served_by(client) == {"b"}
        assert await admin_states(client, api) == {a: "loading", b: "ready"}
        assert await metric_states(client, api) == {a: "loading", b: "ready"}
        assert health.active is not None
        assert health.active._targets[a].state.streak == 0
        assert health.passive is not None and health.passive.available(a, 1e12)

        await stubs.move("a", "ready")
        await states({a: READY, b: READY})
        assert await served_by(client) == {"a", "b"}

        # Busy: traffic only when no Ready backend is left.
        await stubs.move("b", "busy")
        await states({a: READY, b: BUSY})
        assert await served_by(client) == {"a"}
        assert await metric_states(client, api) == {a: "ready", b: "busy"}
        await stubs.move("a", "busy")
        await states({a: BUSY, b: BUSY})
        assert await served_by(client) == {"a", "b"}

        # Error: out of rotation (past unhealthy_threshold); the busy one takes everything.
        await stubs.move("a", "error")
        await states({a: ERROR, b: BUSY})
        await eventually(
            lambda: not next(x for x in gateway.graph.services["llm"].backends if x.url == a).healthy
        )
        assert await served_by(client) == {"b"}

        # Unreachable: nothing left.
        stubs.kill("b")
        await states({a: ERROR, b: "unreachable"})
        await eventually(lambda: not gateway.graph.services["llm"].has_available())
        assert (await client.get("/v1/chat")).status_code == 503
        assert await admin_states(client, api) == {a: "error", b: "unreachable"}
        await anyio.sleep(0)
