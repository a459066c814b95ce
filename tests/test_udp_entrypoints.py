"""UDP entrypoints end to end: real UDP clients, a real gateway, real UDP echo backends."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from a3s_gateway.compiler import CompileError
from a3s_gateway.runtime.gateway import Gateway

from .stubs import eventually
from .tcp_peers import serving
from .udp_peers import free_udp_port, udp_echo, udp_exchange

pytestmark = pytest.mark.anyio


def udp_config(port: int, backends: list[int], *, entrypoint: str = "", service: str = "") -> str:
    servers = ", ".join(f'{{ address = "127.0.0.1:{p}" }}' for p in backends)
    return f"""
entrypoints "udp" {{
  address  = "127.0.0.1:{port}"
  protocol = "udp"
  {entrypoint}
}}
udp_routers "all" {{ service = "echo" }}
services "echo" {{
  load_balancer {{
    servers = [{servers}]
    {service}
  }}
}}
"""


async def test_a_datagram_is_relayed_and_the_reply_comes_back_from_the_entrypoint(tmp_path: Path) -> None:
    async with udp_echo("a") as echo:
        port = free_udp_port()
        async with (
            serving(tmp_path, udp_config(port, [echo.port])) as gateway,
            await anyio.create_connected_udp_socket("127.0.0.1", port) as client,
        ):
            for i in range(3):  # a connected client socket accepts replies only from `port`
                await client.send(b"ping %d" % i)
                with anyio.fail_after(5):
                    assert await client.receive() == b"a:ping %d" % i
            stats = gateway.health()["entrypoints"]["udp"]
            assert stats["sessions"] == 1 and stats["created"] == 1
            assert len(echo.sources) == 1


async def ask(client: anyio.abc.ConnectedUDPSocket, data: bytes, timeout: float = 5.0) -> bytes:
    await client.send(data)
    with anyio.fail_after(timeout):
        return await client.receive()


async def test_sessions_are_keyed_by_client_address_and_balanced(tmp_path: Path) -> None:
    async with udp_echo("a") as a, udp_echo("b") as b:
        port = free_udp_port()
        async with serving(tmp_path, udp_config(port, [a.port, b.port])) as gateway:
            answers = [await udp_exchange(port, b"x") for _ in range(4)]  # four source ports
            assert sorted(answers) == [b"a:x", b"a:x", b"b:x", b"b:x"]
            async with await anyio.create_connected_udp_socket("127.0.0.1", port) as client:
                first = await ask(client, b"1")
                assert [await ask(client, b"1") for _ in range(5)] == [first] * 5  # one session, one backend
            stats = gateway.health()["entrypoints"]["udp"]
            assert stats["created"] == 5 and stats["datagrams_in"] == 10 and stats["datagrams_out"] == 10
            backends = gateway.graph.tcp_services["echo"].backends
            assert sum(x.in_flight for x in backends) == stats["sessions"]


async def test_bursts_both_ways_are_relayed_whole(tmp_path: Path) -> None:
    """A client's burst is read in batches; a backend's burst of replies to one session is read a
    datagram per wake-up on asyncio (the loop calls again while more wait) and in batches on trio:
    either way every datagram arrives, in order."""
    async with udp_echo("a", repeat=50) as echo:
        port = free_udp_port()
        async with (
            serving(tmp_path, udp_config(port, [echo.port])) as gateway,
            await anyio.create_connected_udp_socket("127.0.0.1", port) as client,
        ):
            for i in range(4):
                await client.send(b"%d" % i)
            with anyio.fail_after(10):
                got = [await client.receive() for _ in range(200)]
            assert got == [b"a:%d" % i for i in range(4) for _ in range(50)]
            stats = gateway.health()["entrypoints"]["udp"]
            assert stats["datagrams_in"] == 4 and stats["datagrams_out"] == 200 and stats["bytes_out"] == 600


async def test_a_backend_named_by_host_name_is_looked_up_once_and_relayed_to(tmp_path: Path) -> None:
    async with udp_echo("a") as echo:
        port = free_udp_port()
        text = udp_config(port, [echo.port]).replace("127.0.0.1:", "localhost:")
        async with serving(tmp_path, text) as gateway:
            # Datagrams from several clients arrive while the first lookup runs.
            async with anyio.create_task_group() as tg:
                for i in range(5):
                    tg.start_soon(udp_exchange, port, b"%d" % i)
            async with await anyio.create_connected_udp_socket("127.0.0.1", port) as client:
                for i in range(3):
                    assert await ask(client, b"x%d" % i) == b"a:x%d" % i
            stats = gateway.health()["entrypoints"]["udp"]
            assert stats["created"] == 6 and stats["dropped"] == 0


async def test_on_asyncio_a_session_is_read_by_the_loop_without_a_task(
    tmp_path: Path, anyio_backend: Any
) -> None:
    """asyncio and uvloop keep every UDP socket registered with the loop (asyncio_stream.watch_readable):
    sessions add no task, so a datagram costs no task switch and no register/unregister. trio waits
    in a task per session."""
    async with udp_echo("a") as echo:
        port = free_udp_port()
        async with serving(tmp_path, udp_config(port, [echo.port])) as gateway:
            assert await udp_exchange(port, b"first") == b"a:first"
            before = len(anyio.get_running_tasks())
            for i in range(10):
                assert await udp_exchange(port, b"%d" % i) == b"a:%d" % i
            assert gateway.health()["entrypoints"]["udp"]["sessions"] == 11
            added = len(anyio.get_running_tasks()) - before
            assert added == (10 if anyio_backend[0] == "trio" else 0)


async def test_a_session_ends_after_the_timeout_without_traffic(tmp_path: Path) -> None:
    async with udp_echo() as echo:
        port = free_udp_port()
        text = udp_config(port, [echo.port], entrypoint="udp_session_timeout_secs = 1")
        async with (
            serving(tmp_path, text) as gateway,
            await anyio.create_connected_udp_socket("127.0.0.1", port) as client,
        ):
            assert await ask(client, b"hi") == b"echo:hi"
            stats = lambda: gateway.health()["entrypoints"]["udp"]  # noqa: E731
            await eventually(lambda: stats()["sessions"] == 0)
            assert stats()["expired"] == 1
            assert gateway.graph.tcp_services["echo"].backends[0].in_flight == 0
            assert await ask(client, b"again") == b"echo:again"  # a new session
            assert stats()["created"] == 2 and len(echo.sources) == 2


async def test_past_udp_max_sessions_the_session_idle_longest_is_evicted(tmp_path: Path) -> None:
    async with udp_echo() as echo:
        port = free_udp_port()
        text = udp_config(port, [echo.port], entrypoint="udp_max_sessions = 3")
        async with serving(tmp_path, text) as gateway, contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(await anyio.create_connected_udp_socket("127.0.0.1", port))
                for _ in range(4)
            ]
            for client in clients[:3]:
                assert await ask(client, b"x") == b"echo:x"
            assert await ask(clients[0], b"y") == b"echo:y"  # client 1 is now the one idle longest
            assert await ask(clients[3], b"z") == b"echo:z"  # a fourth session evicts client 1's
            stats = gateway.health()["entrypoints"]["udp"]
            assert stats["sessions"] == 3 and stats["evicted"] == 1
            assert await ask(clients[0], b"w") == b"echo:w"  # client 0 kept its session
            assert gateway.health()["entrypoints"]["udp"]["created"] == 4
            assert len(echo.sources) == 4


async def test_the_largest_datagram_is_relayed_whole(tmp_path: Path) -> None:
    async with udp_echo() as echo:
        port = free_udp_port()
        async with (
            serving(tmp_path, udp_config(port, [echo.port])),
            await anyio.create_connected_udp_socket("127.0.0.1", port) as client,
        ):
            payload = (bytes(range(256)) * 256)[:65507]  # 65,507 bytes: IPv4's largest
            assert len(payload) == 65507
            assert await ask(client, payload) == payload


async def test_a_backend_gone_moves_the_session_and_is_marked(tmp_path: Path) -> None:
    async with udp_echo("a") as a, udp_echo("b") as b:
        port = free_udp_port()
        text = udp_config(port, [a.port, b.port], service="passive_health { max_failures = 1 }")
        async with (
            serving(tmp_path, text) as gateway,
            await anyio.create_connected_udp_socket("127.0.0.1", port) as client,
        ):
            first = await ask(client, b"1")
            gone, other = (a, b) if first == b"a:1" else (b, a)
            gone.stop()  # its port now answers ICMP port unreachable
            answer = b""
            for _ in range(20):  # the datagram the ICMP error answered is lost; the next moves
                try:
                    answer = await ask(client, b"2", timeout=0.5)
                    break
                except TimeoutError:
                    continue
            assert answer == other.name.encode() + b":2"
            assert await ask(client, b"3") == other.name.encode() + b":3"  # same session, new backend
            stats = gateway.health()["entrypoints"]["udp"]
            assert stats["created"] == 1
            backends = {x.url: x for x in gateway.graph.tcp_services["echo"].backends}
            assert not backends[f"127.0.0.1:{gone.port}"].healthy
            # A new client is balanced to the live backend only.
            assert await udp_exchange(port, b"4") == other.name.encode() + b":4"


async def test_reload_keeps_sessions_of_an_unchanged_service_and_moves_the_others(tmp_path: Path) -> None:
    async with udp_echo("one") as one, udp_echo("two") as two:
        port = free_udp_port()
        path = tmp_path / "gw.hcl"
        path.write_text(udp_config(port, [one.port]))
        async with (
            Gateway(str(path)) as gateway,
            await anyio.create_connected_udp_socket("127.0.0.1", port) as client,
        ):
            assert await ask(client, b"a") == b"one:a"
            # Another timeout, same service and backend: the session goes on.
            path.write_text(udp_config(port, [one.port], entrypoint="udp_session_timeout_secs = 60"))
            await gateway.reload()
            assert await ask(client, b"b") == b"one:b"
            assert gateway.health()["entrypoints"]["udp"]["created"] == 1
            # A broken configuration changes nothing.
            path.write_text("entrypoints {")
            with pytest.raises(CompileError):
                await gateway.reload()
            assert await ask(client, b"c") == b"one:c"
            # The backend is replaced: the session moves to the new configuration.
            path.write_text(udp_config(port, [two.port]))
            await gateway.reload()
            assert await ask(client, b"d") == b"two:d"
            stats = gateway.health()["entrypoints"]["udp"]
            assert stats["created"] == 2 and stats["sessions"] == 1
            assert len(one.sources) == 1
