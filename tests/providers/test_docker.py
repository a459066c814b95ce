"""The docker provider in a running gateway, against the fake Docker engine on a unix socket
(tests/docker_engine.py: no Docker engine runs here): labels become routers, services and
middlewares; container events reload; a bad label is a diagnostic; the engine going away and
coming back, or its events stream cut, costs no request."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from a3s_gateway.runtime.gateway import Gateway

from ..backends import backend
from ..docker_engine import fake_docker_engine
from ..docker_shapes import inspect
from ..stubs import eventually, free_port
from .running import servers

pytestmark = pytest.mark.anyio

CONFIG = """
entrypoints "web" {{
  address = "127.0.0.1:{port}"
}}
providers {{
  throttle = "0.1s"
  docker {{
    host = "{host}"
    exposed_by_default = false
  }}
}}
"""


def labels(port: int, **extra: str) -> dict[str, str]:
    return {
        "a3s.enable": "true",
        "a3s.http.routers.llm.rule": "PathPrefix(`/llm`)",
        "a3s.http.routers.llm.middlewares": "strip",
        "a3s.http.services.llm.loadbalancer.server.port": str(port),
        "a3s.http.middlewares.strip.strip-prefix.prefixes": "/llm",
        **extra,
    }


async def test_labels_events_and_faults(tmp_path: Path) -> None:
    port, gw_port = free_port(), free_port()
    with fake_docker_engine(tmp_path) as engine:
        one = inspect("llm-1", labels(port), ip="127.0.0.2")
        engine.run(one)
        engine.run(inspect("other", {"a3s.http.routers.x.rule": "Host(`x`)"}))  # not enabled: left out
        config = tmp_path / "gateway.hcl"
        config.write_text(CONFIG.format(port=gw_port, host=engine.host))
        async with (
            backend(host="127.0.0.2", port=port) as a,
            backend(host="127.0.0.3", port=port) as b,
            Gateway(str(config)) as gateway,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw_port}") as client,
        ):
            await eventually(
                lambda: servers(gateway, "llm@docker") == [f"http://127.0.0.2:{port}"], timeout=20
            )
            response = await client.get("/llm/json")
            assert response.status_code == 200 and a.seen[-1].target == "/json"  # stripped by strip@docker
            routers = {n.name for n in gateway.graph.ir.nodes if n.kind == "router"}
            assert routers == {"llm@docker"}

            # A second replica starts (a `start` event), unhealthy at first.
            two = inspect("llm-2", labels(port), ip="127.0.0.3", health="starting")
            engine.run(two)
            engine.set_health(two, "healthy")
            await eventually(lambda: len(servers(gateway, "llm@docker")) == 2, timeout=20)

            # The events stream is cut: the provider reconnects and reads the containers again.
            engine.drop_events()
            engine.stop_container(one)
            await eventually(
                lambda: servers(gateway, "llm@docker") == [f"http://127.0.0.3:{port}"], timeout=30
            )

            # The engine goes away: the last configuration serves; it comes back with a change.
            providers = gateway.providers
            assert providers is not None
            engine.stop()
            await eventually(lambda: providers.status["docker"].state == "lost", timeout=20)
            statuses = [(await client.get("/llm/json")).status_code for _ in range(10)]
            engine.start()
            engine.run(inspect("llm-1", labels(port), ip="127.0.0.2"))
            await eventually(lambda: len(servers(gateway, "llm@docker")) == 2, timeout=30)
            assert statuses == [200] * 10 and len(b.seen) >= 10

            # A bad label is a diagnostic naming the container and the label; the rest serves.
            engine.run(
                inspect("broken", labels(port, **{"a3s.http.routers.llm.rul": "Host(`y`)"}), ip="127.0.0.9")
            )
            await eventually(lambda: providers.status["docker"].state == "rejected", timeout=20)
            error = providers.status["docker"].last_error or ""
            assert "container broken label a3s.http.routers.llm.rul" in error
            assert (await client.get("/llm/json")).status_code == 200


async def test_health_check_exec_events_do_not_reread_the_containers(tmp_path: Path) -> None:
    # Every health check run is exec_create, exec_start and exec_die on the container: as
    # Traefik, only start, die and health_status make the provider read the containers again.
    port, gw_port = free_port(), free_port()
    with fake_docker_engine(tmp_path) as engine:
        one = inspect("llm-1", labels(port), ip="127.0.0.2")
        engine.run(one)
        config = tmp_path / "gateway.hcl"
        config.write_text(CONFIG.format(port=gw_port, host=engine.host))
        async with Gateway(str(config)) as gateway:
            await eventually(lambda: len(servers(gateway, "llm@docker")) == 1, timeout=20)
            await eventually(lambda: engine.count("GET /events") == 1)
            listed = engine.count("GET /containers/json")
            for action in ("exec_create: curl -f localhost", "exec_start: curl -f localhost", "exec_die"):
                engine.emit(action, one)
            engine.run(inspect("llm-2", labels(port), ip="127.0.0.3"))
            await eventually(lambda: len(servers(gateway, "llm@docker")) == 2, timeout=20)
            assert engine.count("GET /containers/json") == listed + 1
