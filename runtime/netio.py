"""TCP sockets for the data plane: non-blocking stdlib sockets driven by anyio's readiness waits.

Why not `anyio.connect_tcp` / `create_tcp_listener` streams: on asyncio they sit on a
transport/protocol pair that pauses and resumes reading around every receive and yields to the
event loop after every send. On a proxied request (two receives, two sends) that alone costs
about a quarter of the CPU of a bare asyncio relay, more than our whole overhead budget. Here a
send is one `send()` syscall when the kernel takes the bytes (the usual case), and a receive
waits for readiness with `anyio.wait_readable`, then makes one `recv()`. This is still
backend-agnostic: anyio implements the waits on asyncio, uvloop and trio alike.

Fairness: a receive that finds data without waiting does not yield, so a stream whose peers
are always ready could monopolise the loop; every `_HOT_LIMIT` consecutive such receives, one
waits (which is a checkpoint).

On asyncio the launcher swaps in `asyncio_stream.AsyncioSocketStream`, which keeps the socket
registered with the loop instead of waiting per receive (see that module): `STREAM_FACTORY`
is the type new sockets are wrapped in, set by the launcher for the tasks it starts; this
readiness-wait stream is the default and what trio runs on.

`SocketStream` is an `anyio.abc.SocketStream`, so `anyio.streams.tls.TLSStream` wraps it as is.
Closing wakes any task blocked on the socket with `ClosedResourceError` (`notify_closing`),
which is how timeouts and hang-ups unblock a waiter from another task.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import select
import socket
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from typing import Any

import anyio
import anyio.abc
from anyio.lowlevel import checkpoint

__all__ = [
    "STREAM_FACTORY",
    "SocketStream",
    "Spawn",
    "StreamFactory",
    "WatchReadable",
    "bind_tcp",
    "bind_udp",
    "connect_tcp",
    "poll_readable",
    "prepare_socket",
]

_HOT_LIMIT = 16
_RESET = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)


def prepare_socket(sock: socket.socket) -> socket.socket:
    """Non-blocking, and TCP_NODELAY on TCP: every write is a message boundary (an SSE event),
    never held back waiting for Nagle. Both socket streams start with it."""
    sock.setblocking(False)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class SocketStream(anyio.abc.SocketStream):
    def __init__(self, sock: socket.socket) -> None:
        self._sock = prepare_socket(sock)
        self._closed = False
        self._hot = 0  # consecutive receives served without waiting

    @property
    def _raw_socket(self) -> socket.socket:
        return self._sock

    def input_pending(self) -> bool:
        """Whether bytes or the peer's EOF wait unread (a parked upstream gone stale)."""
        return poll_readable(self._sock)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        sock = self._sock
        if self._hot >= _HOT_LIMIT:
            self._hot = 0
            await self._wait_readable()
        while True:
            try:
                data = sock.recv(max_bytes)
                break
            except BlockingIOError:
                self._hot = 0
                await self._wait_readable()
            except _RESET as exc:
                raise anyio.BrokenResourceError from exc
            except OSError as exc:
                raise self._error(exc) from exc
        if not data:
            raise anyio.EndOfStream
        self._hot += 1
        return data

    async def send(self, item: bytes) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        sock = self._sock
        try:
            sent = sock.send(item)
        except BlockingIOError:
            sent = 0
        except _RESET as exc:
            raise anyio.BrokenResourceError from exc
        except OSError as exc:
            raise self._error(exc) from exc
        if sent == len(item):
            return
        view = memoryview(item)[sent:]
        while view:
            if self._closed:
                raise anyio.ClosedResourceError
            try:
                await anyio.wait_writable(sock)
                view = view[sock.send(view) :]
            except BlockingIOError:
                continue
            except ValueError:  # the fd was closed under us
                raise anyio.ClosedResourceError from None
            except _RESET as exc:
                raise anyio.BrokenResourceError from exc
            except OSError as exc:
                raise self._error(exc) from exc

    def _wait_readable(self) -> Awaitable[None]:
        # A plain function returning anyio's awaitable: no extra coroutine frame per stream.
        if self._closed:
            raise anyio.ClosedResourceError
        return anyio.wait_readable(self._sock)

    def _error(self, exc: OSError) -> Exception:
        if self._closed or exc.errno == errno.EBADF:
            return anyio.ClosedResourceError()
        return anyio.BrokenResourceError()

    async def send_eof(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        """Close now, waking any task blocked on this socket (synchronous, unlike aclose)."""
        if not self._closed:
            self._closed = True
            if self._sock.fileno() >= 0:
                anyio.notify_closing(self._sock)
            self._sock.close()

    async def aclose(self) -> None:
        self.close()
        await checkpoint()


def poll_readable(sock: socket.socket) -> bool:
    """Readable right now (data, EOF or an error), without reading; poll(2), so any fd number."""
    if sock.fileno() < 0:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


StreamFactory = Callable[[socket.socket], anyio.abc.SocketStream]
# How a listener starts a connection's task, when the launcher has a cheaper way than a task
# group (the listener tracks the connection's end itself).
Spawn = Callable[[Callable[[], Coroutine[Any, Any, None]]], None]
# Calls `on_readable()` from the loop each time the socket is readable, until the returned function
# is called: a reader that stays registered, for the launcher's loop when it has one (asyncio).
WatchReadable = Callable[[socket.socket, Callable[[], None]], Callable[[], object]]
# The stream type for sockets accepted or connected by the current task and its children.
STREAM_FACTORY: ContextVar[StreamFactory] = ContextVar("STREAM_FACTORY", default=SocketStream)


async def connect_tcp(host: str, port: int) -> anyio.abc.SocketStream:
    """Connect to the first address of `host` that accepts (no DNS lookup for IP literals)."""
    try:
        ipaddress.ip_address(host)
        infos = [(socket.AF_INET6 if ":" in host else socket.AF_INET, (host, port))]
    except ValueError:
        found = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        infos = [(family, addr[:2]) for family, _, _, _, addr in found]
    error: OSError | None = None
    for family, addr in infos:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            try:
                sock.connect(addr)
            except BlockingIOError:
                await anyio.wait_writable(sock)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise OSError(code, os.strerror(code)) from None
            return STREAM_FACTORY.get()(sock)
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
    raise error or OSError(errno.EHOSTUNREACH, f"no address for {host}")


async def bind_tcp(
    host: str, port: int, *, reuse_port: bool = False, backlog: int = 4096
) -> list[socket.socket]:
    """Listening sockets for every address of `host` (one for a literal IP), non-blocking."""
    return await _bind(host, port, socket.SOCK_STREAM, reuse_port, backlog)


async def bind_udp(host: str, port: int, *, reuse_port: bool = False) -> list[socket.socket]:
    """UDP sockets for every address of `host` (one for a literal IP), non-blocking.

    No SO_REUSEADDR: on Linux it would let a second UDP socket bind the same port, and a reload
    must fail (address in use) instead of splitting the datagrams between two sockets.
    """
    return await _bind(host, port, socket.SOCK_DGRAM, reuse_port, None)


async def _bind(
    host: str, port: int, kind: socket.SocketKind, reuse_port: bool, backlog: int | None
) -> list[socket.socket]:
    found = await anyio.getaddrinfo(host or None, port, type=kind, flags=socket.AI_PASSIVE)
    addresses = list(dict.fromkeys((family, addr[:2]) for family, _, _, _, addr in found))
    sockets: list[socket.socket] = []
    try:
        for family, addr in addresses:
            sock = socket.socket(family, kind)
            sockets.append(sock)
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                # Several worker processes share the port; the kernel spreads connections
                # (and UDP clients, by a hash of their address) over them.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6 and len(addresses) > 1:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:  # same ephemeral port on every address
                addr = (addr[0], sockets[0].getsockname()[1])
            sock.bind(addr)
            if backlog is not None:
                sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets
