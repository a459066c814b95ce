"""Real TCP peers for the TCP entrypoint tests: echo backends (plain or TLS), a server that
speaks first, and a raw client. They run in the test's own event loop on real sockets."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from anyio.streams.tls import TLSListener

from a3s_gateway.runtime.gateway import Gateway

from .stubs import free_port

ROOT = Path(__file__).resolve().parents[1]
GATEWAY = str(Path(sys.executable).with_name("a3s-gateway"))


@dataclass
class EchoServer:
    """Echoes every byte, prefixed by `greeting` (sent first, before reading); counts peers."""

    name: str = "echo"
    greeting: bytes = b""
    port: int = 0
    connections: int = 0
    open: int = 0
    peers: list[str] = field(default_factory=list)
    # Bytes received before the first echo (what a PROXY-protocol backend would parse).
    firsts: list[bytes] = field(default_factory=list)
    half_closed: int = 0
    scope: anyio.CancelScope | None = None
    streams: set[anyio.abc.ByteStream] = field(default_factory=set)

    async def reset_all(self) -> None:
        """Drop every open connection with a RST, as a crashed backend would."""
        for stream in list(self.streams):
            sock = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await anyio.aclose_forcefully(stream)

    async def handle(self, stream: anyio.abc.ByteStream) -> None:
        self.connections += 1
        self.open += 1
        self.streams.add(stream)
        peer = stream.extra(anyio.abc.SocketAttribute.remote_address, ("?", 0))
        self.peers.append(str(peer[0]))
        try:
            if self.greeting:
                await stream.send(self.greeting)
            first = True
            while True:
                try:
                    data = await stream.receive()
                except anyio.EndOfStream:
                    self.half_closed += 1
                    await stream.send(b"[eof]")
                    return
                if first:
                    self.firsts.append(data)
                    first = False
                await stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, ssl.SSLError):
            pass
        finally:
            self.open -= 1
            self.streams.discard(stream)
            await anyio.aclose_forcefully(stream)


@asynccontextmanager
async def echo_server(
    name: str = "echo", *, greeting: bytes = b"", ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[EchoServer]:
    server = EchoServer(name, greeting)
    listener: Any = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    server.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    if ssl_context is not None:
        listener = TLSListener(listener, ssl_context, standard_compatible=False)
    async with anyio.create_task_group() as tg:
        server.scope = tg.cancel_scope
        tg.start_soon(listener.serve, server.handle)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()
    await listener.aclose()


@asynccontextmanager
async def serving(tmp_path: Path, text: str) -> AsyncIterator[Gateway]:
    path = tmp_path / "gw.hcl"
    path.write_text(text)
    async with Gateway(str(path)) as gateway:
        yield gateway


def local_example(name: str, replacements: Iterable[tuple[str, str]]) -> str:
    """examples/`name` with its addresses replaced by local ones (each must be in the file)."""
    text = (ROOT / "examples" / name).read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    return text


@asynccontextmanager
async def gateway_process(tmp_path: Path, name: str, text: str) -> AsyncIterator[anyio.abc.Process]:
    """`a3s-gateway run` on `text` (saved as tmp_path/`name`), as a user runs it; stopped on exit."""
    path = tmp_path / name
    path.write_text(text)
    process = await anyio.open_process([GATEWAY, "run", "--config", str(path)], stderr=subprocess.PIPE)
    try:
        yield process
    except Exception as exc:
        if process.returncode is None:
            raise
        # The gateway exited under the test (its port taken by another test's process, a
        # crash): say why, from its own stderr, rather than with the client's error alone.
        assert process.stderr is not None
        with anyio.move_on_after(5), contextlib.suppress(anyio.EndOfStream):
            err = (await process.stderr.receive()).decode(errors="replace")
            raise AssertionError(f"the gateway exited ({process.returncode}): {err[-2000:]}") from exc
        raise
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        with anyio.fail_after(15):
            await process.wait()
        await process.aclose()


async def talk(port: int, data: bytes, *, expect: int | None = None) -> bytes:
    """Send `data` on a fresh connection, then read `expect` bytes (default: as many as sent)."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(data)
        return await read_exactly(stream, len(data) if expect is None else expect)


async def read_exactly(stream: anyio.abc.ByteStream, count: int) -> bytes:
    out = b""
    with anyio.fail_after(10):
        while len(out) < count:
            out += await stream.receive()
    return out


async def closed_without_data(stream: anyio.abc.ByteStream) -> bool:
    """Whether the peer closes (FIN or RST) without sending a byte."""
    with anyio.fail_after(10):
        try:
            data = await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return True
    return not data


def blocking_port_state(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


__all__ = ["EchoServer", "closed_without_data", "echo_server", "free_port", "read_exactly", "serving", "talk"]
