"""TCP entrypoints end to end: real clients, a real gateway, real echo backends."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from .stubs import eventually, refusing_port
from .tcp_peers import closed_without_data, echo_server, free_port, read_exactly, serving, talk

pytestmark = pytest.mark.anyio


def plain(port: int, backends: list[int], *, extra: str = "", entrypoint: str = "") -> str:
    servers = ", ".join(f'{{ address = "127.0.0.1:{p}" }}' for p in backends)
    return f"""
entrypoints "tcp" {{
  address  = "127.0.0.1:{port}"
  protocol = "tcp"
  {entrypoint}
}}
tcp_routers "all" {{
  rule    = "HostSNI(`*`)"
  service = "echo"
}}
services "echo" {{
  load_balancer {{ servers = [{servers}] }}
}}
{extra}
"""


async def test_a_plaintext_connection_is_relayed_both_ways(tmp_path: Path) -> None:
    async with echo_server() as echo:
        port = free_port()
        async with serving(tmp_path, plain(port, [echo.port])):
            assert await talk(port, b"hello") == b"hello"
            payload = bytes(range(256)) * 4096  # 1 MiB
            assert await talk(port, payload) == payload
            assert echo.connections == 2


async def test_server_first_protocols_work_when_no_router_needs_the_client_hello(tmp_path: Path) -> None:
    """Only plaintext routers: the gateway connects at once, and the backend speaks first."""
    async with echo_server(greeting=b"220 ready\r\n") as smtp:
        port = free_port()
        async with (
            serving(tmp_path, plain(port, [smtp.port])),
            await anyio.connect_tcp("127.0.0.1", port) as c,
        ):
            assert await read_exactly(c, 11) == b"220 ready\r\n"


async def test_half_close_keeps_the_other_direction_open(tmp_path: Path) -> None:
    async with echo_server() as echo:
        port = free_port()
        async with serving(tmp_path, plain(port, [echo.port])):
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                await client.send(b"last words")
                await client.send_eof()  # our FIN reaches the backend, which still answers
                assert await read_exactly(client, 15) == b"last words[eof]"
                assert await closed_without_data(client)
            assert echo.half_closed == 1


async def test_round_robin_over_the_servers_and_in_flight_counts(tmp_path: Path) -> None:
    async with echo_server("a") as a, echo_server("b") as b:
        port = free_port()
        async with serving(tmp_path, plain(port, [a.port, b.port])) as gateway:
            for _ in range(4):
                assert await talk(port, b"x") == b"x"
            assert (a.connections, b.connections) == (2, 2)
            await eventually(
                lambda: all(x.in_flight == 0 for x in gateway.graph.tcp_services["echo"].backends)
            )


async def test_max_connections_and_tcp_allowed_ips_refuse_at_accept(tmp_path: Path) -> None:
    async with echo_server() as echo:
        port = free_port()
        text = plain(port, [echo.port], entrypoint="max_connections = 1")
        async with serving(tmp_path, text) as gateway:
            async with await anyio.connect_tcp("127.0.0.1", port) as first:
                await first.send(b"1")
                assert await read_exactly(first, 1) == b"1"
                async with await anyio.connect_tcp("127.0.0.1", port) as second:
                    assert await closed_without_data(second)
            assert echo.connections == 1
            await eventually(lambda: gateway.health()["entrypoints"]["tcp"]["connections"] == 0)
            assert await talk(port, b"again") == b"again"
        port = free_port()
        async with serving(tmp_path, plain(port, [echo.port], entrypoint='tcp_allowed_ips = ["10.0.0.0/8"]')):
            async with await anyio.connect_tcp("127.0.0.1", port) as refused:
                assert await closed_without_data(refused)
            assert echo.connections == 2


async def test_idle_connections_are_closed(tmp_path: Path) -> None:
    async with echo_server() as echo:
        port = free_port()
        async with serving(tmp_path, plain(port, [echo.port], entrypoint='timeouts { idle = "0.3s" }')):
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                await client.send(b"hi")
                assert await read_exactly(client, 2) == b"hi"
                assert await closed_without_data(client)  # nothing more: the ticker cuts it
            await eventually(lambda: echo.open == 0)


async def test_a_refused_backend_resets_the_client_and_is_marked(tmp_path: Path) -> None:
    port = free_port()
    extra = "passive_health { max_failures = 1 }"
    with refusing_port() as dead:  # bound, never listening: no other test can take it meanwhile
        text = plain(port, [dead]).replace("load_balancer {", f"load_balancer {{ {extra}\n")
        async with serving(tmp_path, text) as gateway:
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                assert await closed_without_data(client)
            backend = gateway.graph.tcp_services["echo"].backends[0]
            await eventually(lambda: not backend.healthy)


async def test_a_backend_that_disappears_mid_stream_closes_the_client(tmp_path: Path) -> None:
    async with echo_server() as echo:
        port = free_port()
        text = plain(port, [echo.port]).replace(
            "load_balancer {", "load_balancer { passive_health { max_failures = 1 }\n"
        )
        async with serving(tmp_path, text) as gateway:
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                await client.send(b"ping")
                assert await read_exactly(client, 4) == b"ping"
                await echo.reset_all()
                assert await closed_without_data(client)
            backend = gateway.graph.tcp_services["echo"].backends[0]
            await eventually(lambda: not backend.healthy)
