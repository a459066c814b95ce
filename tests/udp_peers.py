"""Real UDP peers for the UDP entrypoint tests: echo backends and clients on real sockets, run in
the test's own event loop (anyio's UDP sockets, on asyncio, uvloop and trio alike)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc

from .stubs import pick_port

__all__ = ["UdpEcho", "free_udp_port", "udp_echo", "udp_exchange"]


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing is bound to right now (from below the ephemeral
    range, as stubs.pick_port explains)."""
    return pick_port(socket.SOCK_DGRAM)


@dataclass
class UdpEcho:
    """Answers every datagram with `name` + ":" + the datagram, `repeat` times (or not at all when
    `silent`)."""

    name: str = "echo"
    silent: bool = False
    repeat: int = 1
    port: int = 0
    received: int = 0
    sources: set[tuple[str, int]] = field(default_factory=set)
    scope: anyio.CancelScope | None = None

    async def serve(self, sock: anyio.abc.UDPSocket) -> None:
        prefix = self.name.encode() + b":"
        async for data, source in sock:
            self.received += 1
            self.sources.add((str(source[0]), int(source[1])))
            if not self.silent:
                answer = prefix + data if len(data) < 65000 else data
                for _ in range(self.repeat):
                    await sock.sendto(answer, source[0], source[1])

    def stop(self) -> None:
        """Close the socket: the port answers ICMP port unreachable from now on."""
        assert self.scope is not None
        self.scope.cancel()


@asynccontextmanager
async def udp_echo(
    name: str = "echo", *, silent: bool = False, port: int = 0, repeat: int = 1
) -> AsyncIterator[UdpEcho]:
    echo = UdpEcho(name, silent, repeat)
    async with await anyio.create_udp_socket(local_host="127.0.0.1", local_port=port) as sock:
        echo.port = sock.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:
            echo.scope = tg.cancel_scope
            tg.start_soon(echo.serve, sock)
            yield echo
            tg.cancel_scope.cancel()


async def udp_exchange(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send one datagram from a fresh source port; return the first reply (fail on silence)."""
    async with await anyio.create_connected_udp_socket("127.0.0.1", port, local_host="127.0.0.1") as sock:
        await sock.send(data)
        with anyio.fail_after(timeout):
            return await sock.receive()
