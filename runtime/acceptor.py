"""What every entrypoint server does whatever it serves: bind, accept, track its connections.

`Acceptor` binds the entrypoint's address, accepts in batches (`ACCEPT_BATCH`), hands each
accepted stream to `_admit` (the subclass: HTTP in listener.py, TCP in l4/server.py), tracks the
connection tasks it starts (`_start`, `_forget`), and waits for them before `serve` returns. A
server bound during a reload is given a `gate`: its socket is bound (so a port in use fails the
reload before anything changed) but it accepts only once the reload commits and opens it.

Connection tasks are children of the server's task group, or started by a loop-native `spawn`
(gateway.py on asyncio: anyio's task handle costs about 2 KiB per task); either way the server
tracks them itself and cancels those still running (each connection's `scope`) if `serve` is
cancelled.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Coroutine
from typing import Any, Protocol

import anyio
import anyio.abc

from ..compiler.schema import EntrypointConfig
from .netio import STREAM_FACTORY, SocketStream, Spawn, StreamFactory, bind_tcp

__all__ = ["ACCEPT_BATCH", "Acceptor", "Tracked"]

log = logging.getLogger("a3s_gateway.listener")

# Connections accepted per loop pass. A burst of new connections (1,000 SSE streams opening)
# is admitted a batch per pass, interleaved with the I/O of the streams already open, instead
# of all at once ahead of it; the rest wait in the kernel's backlog (netio.bind_tcp: 4096),
# and the listening socket is still readable, so the next pass takes the next batch. Measured
# (docs/benchmarks.md): with 1,000 streams opening 100 per 20 ms, p99 event latency 77 ms when
# taking the whole burst, 12 ms with 16 per pass; a 256-connection storm is still accepted
# within the first 100-200 ms (4 per pass: 600 ms).
ACCEPT_BATCH = 16


class Tracked(Protocol):
    """A connection as its server tracks it."""

    @property
    def scope(self) -> anyio.CancelScope: ...

    def run(self) -> Coroutine[Any, Any, None]: ...


class Acceptor:
    def __init__(
        self,
        config: EntrypointConfig,
        *,
        reuse_port: bool = False,
        stream_factory: StreamFactory = SocketStream,
        spawn: Spawn | None = None,
    ) -> None:
        self.config = config
        # The socket stream type (the launcher picks the loop-native one on asyncio); the
        # connections' upstream sockets get the same, through STREAM_FACTORY.
        self._wrap = stream_factory
        self._spawn = spawn
        self._reuse_port = reuse_port
        self._connections: set[Any] = set()
        # The open-connections gauge child of this entrypoint when metrics are on (the gateway
        # sets it at each commit); moved per connection, never per request or chunk.
        self.connections_gauge: Any = None
        self._accept_scope = anyio.CancelScope()
        self._accepting = False
        self._tg: anyio.abc.TaskGroup | None = None
        self._empty: anyio.Event | None = None
        # Where the listening sockets are bound (filled by serve(); port 0 gets a real port).
        self.addresses: list[tuple[str, int]] = []
        self._unbound = anyio.Event()  # set once the listening sockets are closed

    async def serve(
        self,
        *,
        gate: anyio.Event | None = None,
        task_status: anyio.abc.TaskStatus[Any] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Bind, report `(host, port)` as started, serve until accepting stopped and all connections ended.

        With a `gate`, connections wait in the backlog until it is set (a reload's commit).
        """
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
                # Cancelled (a hard stop): connections outside the task group end with it.
                if self._connections:
                    with anyio.CancelScope(shield=True):
                        self._cut()
                        with anyio.move_on_after(5):
                            await self._wait_empty()
            tg.cancel_scope.cancel()

    def stop_accepting(self) -> None:
        """Close the listening sockets; connections already open keep being served."""
        self._accepting = False
        self._accept_scope.cancel()

    async def wait_unbound(self) -> None:
        """Return once the listening sockets are closed (after `stop_accepting`)."""
        await self._unbound.wait()

    async def drain(self, timeout: float) -> None:
        """Stop accepting, let open connections finish for up to `timeout` seconds, cut the rest."""
        self.stop_accepting()
        self._start_draining()
        with anyio.move_on_after(timeout):
            await self._wait_empty()
        if self._connections:
            log.warning("drain timeout: cutting %d connections", len(self._connections))
            self._cut()
            with anyio.move_on_after(1.0):
                await self._wait_empty()

    # ------------------------------------------------------------------ for the subclasses

    def _start_draining(self) -> None:
        """Refuse new connections from now on, and close those that can be closed at once."""

    async def _ticker(self) -> None:
        """The server's clock (timeouts); none by default."""

    def _admit(self, stream: anyio.abc.SocketStream, peer: tuple[str, int]) -> None:
        raise NotImplementedError

    def _accept_context(self) -> None:
        """Context variables the connection tasks started by this accept loop inherit."""
        STREAM_FACTORY.set(self._wrap)

    def count_connections(self, gauge: Any) -> None:
        """Move `gauge` (a Gauge child, or None) with the open connections from now on."""
        old, self.connections_gauge = self.connections_gauge, gauge
        if old is not None and old is not gauge:
            old.set(0)  # the entrypoint was renamed, or metrics were turned off
        if gauge is not None:
            gauge.set(len(self._connections))

    def _start(self, conn: Tracked) -> None:
        assert self._tg is not None
        self._connections.add(conn)
        if self.connections_gauge is not None:
            self.connections_gauge.inc()
        if self._spawn is not None:
            self._spawn(conn.run)
        else:
            self._tg.start_soon(conn.run)

    def _forget(self, conn: Tracked) -> None:
        if conn in self._connections:
            self._connections.discard(conn)
            if self.connections_gauge is not None:
                self.connections_gauge.dec()
        if not self._connections and self._empty is not None:
            self._empty.set()

    def _cut(self) -> None:
        for conn in list(self._connections):
            conn.scope.cancel()

    async def _wait_empty(self) -> None:
        while self._connections:
            if self._empty is None or self._empty.is_set():
                self._empty = anyio.Event()  # shared by every waiter (serve and drain)
            await self._empty.wait()

    async def _accept_loop(self, sock: socket.socket) -> None:
        self._accept_context()
        wrap = self._wrap
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
                self._admit(wrap(client), _peer(addr))


def _peer(addr: object) -> tuple[str, int]:
    return (str(addr[0]), int(addr[1])) if isinstance(addr, tuple) else ("0.0.0.0", 0)
