"""Metrics of TCP and UDP entrypoints through a running gateway: real clients, real echo backends,
`/metrics` scraped on the api address and parsed with prometheus-client's own parser."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from .stubs import eventually, free_ports
from .tcp_peers import closed_without_data, echo_server, read_exactly, serving, talk
from .test_metrics import value
from .udp_peers import free_udp_port, udp_echo, udp_exchange

pytestmark = pytest.mark.anyio

BYTES = "a3s_gateway_tcp_bytes_total"
DURATION = "a3s_gateway_tcp_connection_duration_seconds_count"
OPEN = "a3s_gateway_open_connections"


def l4_config(api: int, tcp: int, tcp_backend: int, udp: int, udp_backend: int, metrics: bool = True) -> str:
    block = "metrics {\n  prometheus {\n    buckets = [0.05, 0.5, 5]\n  }\n}\n" if metrics else ""
    return f"""
api {{
  address = "127.0.0.1:{api}"
}}
{block}
entrypoints "tcp" {{
  address  = "127.0.0.1:{tcp}"
  protocol = "tcp"
}}
entrypoints "udp" {{
  address  = "127.0.0.1:{udp}"
  protocol = "udp"
}}
tcp_routers "all" {{
  rule        = "HostSNI(`*`)"
  service     = "echo"
  middlewares = ["guard"]
}}
middlewares "guard" {{
  type            = "tcp-filter"
  max_connections = 1
}}
udp_routers "dns" {{ service = "udp-echo" }}
services "echo" {{
  load_balancer {{ servers = [{{ address = "127.0.0.1:{tcp_backend}" }}] }}
}}
services "udp-echo" {{
  load_balancer {{ servers = [{{ address = "127.0.0.1:{udp_backend}" }}] }}
}}
"""


async def scrape(api: int) -> str:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"http://127.0.0.1:{api}/metrics")).text


async def test_tcp_bytes_duration_open_connections_and_filter_refusals(tmp_path: Path) -> None:
    async with echo_server() as echo, udp_echo() as uecho:
        api, tcp = free_ports(2)
        udp = free_udp_port()
        async with serving(tmp_path, l4_config(api, tcp, echo.port, udp, uecho.port)) as gw:
            assert gw.metrics is not None
            read = gw.metrics.value  # the registry /metrics serves, read without a request
            route = {"entrypoint": "tcp", "router": "all", "service": "echo"}
            payload = bytes(range(256)) * 1024  # 256 KiB each way
            assert await talk(tcp, payload) == payload

            await eventually(lambda: read(DURATION, route) == 1)
            text = await scrape(api)
            assert value(text, BYTES, **route, direction="in") == len(payload)
            # The echo answers the client's FIN with "[eof]", relayed before the close.
            echoed = len(payload) + len(b"[eof]")
            assert value(text, BYTES, **route, direction="out") == echoed

            async with await anyio.connect_tcp("127.0.0.1", tcp) as first:
                await first.send(b"ping")
                assert await read_exactly(first, 4) == b"ping"
                text = await scrape(api)
                assert value(text, OPEN, entrypoint="tcp", protocol="TCP") == 1
                # Counted while the connection is open, at the next tick of a busy relay.
                await first.send(b"more")
                assert await read_exactly(first, 4) == b"more"

                await eventually(lambda: read(BYTES, {**route, "direction": "out"}) == echoed + 8)
                async with await anyio.connect_tcp("127.0.0.1", tcp) as second:  # over max_connections
                    assert await closed_without_data(second)
                text = await scrape(api)
                assert (
                    value(
                        text,
                        "a3s_gateway_tcp_filter_refused_connections_total",
                        middleware="guard",
                        reason="max_connections",
                    )
                    == 1
                )
                assert (
                    value(
                        text,
                        "a3s_gateway_tcp_filter_refused_connections_total",
                        middleware="guard",
                        reason="ip",
                    )
                    == 0
                )

            await eventually(lambda: read(DURATION, route) == 2)
            text = await scrape(api)
            assert value(text, OPEN, entrypoint="tcp", protocol="TCP") == 0
            assert value(text, BYTES, **route, direction="in") == len(payload) + 8
            assert value(text, "a3s_gateway_tcp_refused_connections_total", entrypoint="tcp") == 0


async def test_udp_sessions_bytes_and_datagrams(tmp_path: Path) -> None:
    async with echo_server() as echo, udp_echo() as uecho:
        api, tcp = free_ports(2)
        udp = free_udp_port()
        async with serving(tmp_path, l4_config(api, tcp, echo.port, udp, uecho.port)):
            text = await scrape(api)
            assert value(text, "a3s_gateway_udp_sessions", entrypoint="udp") == 0
            replies = [await udp_exchange(udp, b"q%d" % i) for i in range(3)]  # 3 source ports
            text = await scrape(api)
            assert value(text, "a3s_gateway_udp_sessions", entrypoint="udp") == 3
            sent = sum(len(b"q%d" % i) for i in range(3))
            assert value(text, "a3s_gateway_udp_bytes_total", entrypoint="udp", direction="in") == sent
            assert value(text, "a3s_gateway_udp_bytes_total", entrypoint="udp", direction="out") == sum(
                map(len, replies)
            )
            assert value(text, "a3s_gateway_udp_datagrams_total", entrypoint="udp", direction="in") == 3
            assert value(text, "a3s_gateway_udp_datagrams_total", entrypoint="udp", direction="out") == 3


async def test_without_metrics_a_connection_carries_no_meter(tmp_path: Path) -> None:
    async with echo_server() as echo, udp_echo() as uecho:
        api, tcp = free_ports(2)
        udp = free_udp_port()
        async with serving(tmp_path, l4_config(api, tcp, echo.port, udp, uecho.port, metrics=False)) as gw:
            assert gw.graph.tcp_meters is None
            async with await anyio.connect_tcp("127.0.0.1", tcp) as client:
                await client.send(b"ping")
                assert await read_exactly(client, 4) == b"ping"
                (conn,) = gw._entrypoints.listeners["tcp"].server._connections
                assert conn.meter is None and conn.relay is not None


async def test_the_admin_api_shows_tcp_and_udp_services_with_open_connections(tmp_path: Path) -> None:
    async with echo_server() as echo, udp_echo() as uecho:
        api, tcp = free_ports(2)
        udp = free_udp_port()
        text = l4_config(api, tcp, echo.port, udp, uecho.port, metrics=False)
        async with (
            serving(tmp_path, text),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{api}/api/gateway") as admin,
            await anyio.connect_tcp("127.0.0.1", tcp) as client,
        ):
            await client.send(b"ping")
            assert await read_exactly(client, 4) == b"ping"
            assert await udp_exchange(udp, b"q") == b"echo:q"  # one UDP session, still open
            services = {s["name"]: s for s in (await admin.get("/services")).json()}
            for name, port in (("echo", echo.port), ("udp-echo", uecho.port)):
                assert services[name]["kind"] == "load-balancer" and services[name]["status"] == "up"
                assert [b["url"] for b in services[name]["backends"]] == [f"127.0.0.1:{port}"]
            backends = {b["service"]: b for b in (await admin.get("/backends")).json()}
            assert backends["echo"]["open_connections"] == 1 and backends["echo"]["healthy"]
            assert backends["udp-echo"]["open_connections"] == 1
            health = (await admin.get("/health")).json()
            assert health["services"]["echo"]["status"] == "up"
            assert health["services"]["udp-echo"]["backends"][0]["url"] == f"127.0.0.1:{uecho.port}"
