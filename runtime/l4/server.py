"""A TCP entrypoint: binds, accepts, and runs one `TcpConnection` task per client.

The same shape as the HTTP entrypoint's server (runtime/listener.py), so `EntrypointSet` binds,
hands over on reload and drains both alike: `serve(gate=...)`, `stop_accepting()`, `drain()`,
`reconfigure()`, `statistics()`.

At accept, before any byte is read: `tcp_allowed_ips` (a peer outside it is closed at once)
and `max_connections`, which counts the connections in flight on this entrypoint (past it a
new one is closed at once: there is no protocol in which to say why). The ticker is the
entrypoint's only clock: every `tick` it asks each connection whether its relay has been idle
for `timeouts.idle` (connection.py).

Reload: a kept socket takes the entrypoint's new settings for the connections it accepts from
then on; open connections keep theirs, and keep relaying on the generation that accepted them.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc

from ...compiler.schema import EntrypointConfig
from ..listener import ACCEPT_BATCH
from ..netio import STREAM_FACTORY, SocketStream, Spawn, StreamFactory, bind_tcp
from .connection import Current, TcpConnection, TcpEntrypoint

__all__ = ["TcpServer", "TcpStatistics"]

log = logging.getLogger("a3s_gateway.tcp")


@dataclass(frozen=True, slots=True)
class TcpStatistics:
    connections: int
    accepted: int
    refused: int
    accepting: bool


class TcpServer:
    def __init__(
        self,
        config: EntrypointConfig,
        current: Current,
        *,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
        stream_factory: StreamFactory = SocketStream,
        spawn: Spawn | None = None,
    ) -> None:
        self.config = config
        self._entrypoint = TcpEntrypoint(config, ssl_context)
        self._current = current
        self._reuse_port = reuse_port
        self._wrap = stream_factory
        self._spawn = spawn
        self._connections: set[TcpConnection] = set()
        self._accepted = 0
        self._refused = 0
        self._accept_scope = anyio.CancelScope()
        self._accepting = False
        self._draining = False
        self._tg: anyio.abc.TaskGroup | None = None
        self._empty: anyio.Event | None = None
        self._unbound = anyio.Event()
        self.tick = _tick(config)
        self.addresses: list[tuple[str, int]] = []

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return self._entrypoint.ssl_context

    def reconfigure(self, config: EntrypointConfig, ssl_context: ssl.SSLContext | None) -> None:
        """New settings for the connections accepted from now on; open ones keep theirs."""
        assert config.address == self.config.address, "a new address needs a new socket"
        self.config, self._entrypoint = config, TcpEntrypoint(config, ssl_context)
        self.tick = min(self.tick, _tick(config))

    async def serve(
        self,
        *,
        gate: anyio.Event | None = None,
        task_status: anyio.abc.TaskStatus[Any] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Bind, report `(host, port)`, serve until accepting stopped and all connections ended."""
        sockets = await bind_tcp(self.config.host, self.config.port, reuse_port=self._reuse_port)
        self.addresses = [(str(a[0]), int(a[1])) for a in (s.getsockname() for s in sockets)]
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._ticker)
            task_status.started(self.addresses[0])
            try:
                with self._accept_scope:
                    if gate is not None:
                        await gate.wait()
                    self._accepting = True
                    async with anyio.create_task_group() as accept:
                        for sock in sockets:
                            accept.start_soon(self._accept_loop, sock)
            finally:
                self._accepting = False
                for sock in sockets:
                    anyio.notify_closing(sock)
                    sock.close()
                self._unbound.set()
            try:
                await self._wait_empty()
            finally:
                if self._connections:  # cancelled (a hard stop): cut what is left
                    with anyio.CancelScope(shield=True):
                        self._cut()
                        with anyio.move_on_after(5):
                            await self._wait_empty()
            tg.cancel_scope.cancel()

    def stop_accepting(self) -> None:
        self._accepting = False
        self._accept_scope.cancel()

    async def wait_unbound(self) -> None:
        await self._unbound.wait()

    async def drain(self, timeout: float) -> None:
        """Let open connections finish for up to `timeout` seconds, then cut them."""
        self.stop_accepting()
        self._draining = True
        with anyio.move_on_after(timeout):
            await self._wait_empty()
        if self._connections:
            log.warning("drain timeout: cutting %d TCP connections", len(self._connections))
            self._cut()
            with anyio.move_on_after(1.0):
                await self._wait_empty()

    def statistics(self) -> TcpStatistics:
        return TcpStatistics(len(self._connections), self._accepted, self._refused, self._accepting)

    # ------------------------------------------------------------------ internals

    def _cut(self) -> None:
        for conn in list(self._connections):
            conn.scope.cancel()

    async def _wait_empty(self) -> None:
        while self._connections:
            if self._empty is None or self._empty.is_set():
                self._empty = anyio.Event()
            await self._empty.wait()

    async def _ticker(self) -> None:
        while True:
            await anyio.sleep(self.tick)
            now = time.monotonic()
            for conn in list(self._connections):
                conn.check(now)

    async def _accept_loop(self, sock: socket.socket) -> None:
        STREAM_FACTORY.set(self._wrap)  # backend connections get the same stream type
        while True:
            await anyio.wait_readable(sock)
            for _ in range(ACCEPT_BATCH):
                try:
                    client, addr = sock.accept()
                except BlockingIOError:
                    break
                except OSError as exc:  # EMFILE and friends: back off instead of spinning
                    log.error("accept failed on %s: %s", self.config.address, exc)
                    await anyio.sleep(0.1)
                    break
                self._admit(client, (str(addr[0]), int(addr[1])))

    def _admit(self, client: socket.socket, peer: tuple[str, int]) -> None:
        assert self._tg is not None
        entrypoint = self._entrypoint
        limit = self.config.max_connections
        full = limit is not None and len(self._connections) >= limit
        if full or self._draining or not entrypoint.admits(peer[0]):
            self._refused += 1
            client.close()  # before reading a byte: the peer sees the close
            return
        self._accepted += 1
        conn = TcpConnection(
            self._wrap(client), peer, entrypoint, self._current, self._forget, time.monotonic()
        )
        self._connections.add(conn)
        if self._spawn is not None:
            self._spawn(conn.run)
        else:
            self._tg.start_soon(conn.run)

    def _forget(self, conn: TcpConnection) -> None:
        self._connections.discard(conn)
        if not self._connections and self._empty is not None:
            self._empty.set()


def _tick(config: EntrypointConfig) -> float:
    return max(0.01, min(0.5, config.timeouts.idle / 4))
