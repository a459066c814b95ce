"""An HTTP entrypoint: binds, accepts, and runs one `HttpConnection` task per client.

One task group per entrypoint owns every connection task, the accept loops and the ticker.
The ticker is the entrypoint's only clock: every `tick` seconds it asks each connection to
check its published deadlines (see connection.py), which keeps timeouts off the per-request
path. Ticks are a fraction of the shortest timeout, so a deadline fires at most one tick late.

Connection limit: past `max_connections` (and while draining), a new connection is accepted,
answered with a minimal 503 (Connection: close) and closed at once, without reading its
request: the client learns why instead of hanging in the backlog, and costs only that write.

Connection tasks: by default children of the listener's task group; the launcher may pass a
loop-native `spawn` instead (gateway.py on asyncio: anyio's task handle costs about 2 KiB per
task, i.e. per open stream). Either way the listener tracks its connections itself, waits for
them before `serve` returns, and cancels those still running if `serve` is cancelled.

Shutdown is two calls: `stop_accepting()` closes the listening sockets; `drain(timeout)`
closes idle keep-alive connections, lets in-flight requests and streams finish (their
responses carry `Connection: close`), and cancels what is still running at the deadline.

Reload: a server whose address stays keeps its socket and its connections; `reconfigure()`
gives it the entrypoint's new settings (timeouts, limits, TLS), which apply to the connections
it accepts from then on, while each open connection keeps the settings it was accepted with.
A server bound during a reload is given a `gate`: its socket is bound (so a port in use fails
the reload before anything changed) but it accepts only once the reload commits and opens it.
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

from ..compiler.schema import EntrypointConfig
from . import deadlines
from .api import Handler
from .connection import ConnectionSettings, ConnectionTracker, HttpConnection
from .events import ResponseHead
from .netio import STREAM_FACTORY, SocketStream, Spawn, StreamFactory, bind_tcp
from .protocols import render_response
from .upstream.h2 import PUMPS

__all__ = ["HttpServer", "ServerStatistics"]

log = logging.getLogger("a3s_gateway.listener")

# Connections accepted per loop pass. A burst of new connections (1,000 SSE streams opening)
# is admitted a batch per pass, interleaved with the I/O of the streams already open, instead
# of all at once ahead of it; the rest wait in the kernel's backlog (netio.bind_tcp: 4096),
# and the listening socket is still readable, so the next pass takes the next batch. Measured
# (docs/benchmarks.md): with 1,000 streams opening 100 per 20 ms, p99 event latency 77 ms when
# taking the whole burst, 12 ms with 16 per pass; a 256-connection storm is still accepted
# within the first 100-200 ms (4 per pass: 600 ms).
ACCEPT_BATCH = 16

_BUSY = render_response(
    ResponseHead(1, 503, [(b"content-type", b"application/json")], reason=b"Service Unavailable"),
    b'{"error":{"type":"too_many_connections","message":"connection limit reached","status":503}}',
)


@dataclass(frozen=True, slots=True)
class ServerStatistics:
    connections: int
    in_flight: int
    requests: int
    refused: int
    accepting: bool


class HttpServer:
    def __init__(
        self,
        config: EntrypointConfig,
        dispatch: Handler,
        *,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
        probe_after: float = 1.0,
        stream_factory: StreamFactory = SocketStream,
        spawn: Spawn | None = None,
    ) -> None:
        self.config = config
        # The socket stream type (the launcher picks the loop-native one on asyncio); the
        # connections' upstream sockets get the same, through STREAM_FACTORY.
        self._wrap = stream_factory
        self._spawn = spawn
        self._dispatch = dispatch
        self._ssl = ssl_context
        self._reuse_port = reuse_port
        scheme = "https" if ssl_context is not None else "http"
        self._settings = ConnectionSettings.from_config(config, scheme=scheme, probe_after=probe_after)
        self._tracker = ConnectionTracker()
        self._connections: set[HttpConnection] = set()
        # The open-connections gauge child of this entrypoint when metrics are on (the gateway
        # sets it at each commit); moved per connection, never per request.
        self.connections_gauge: Any = None
        self._refused = 0
        self._accept_scope = anyio.CancelScope()
        self._accepting = False
        self._tg: anyio.abc.TaskGroup | None = None
        self._empty: anyio.Event | None = None
        self._watch = deadlines.DeadlineWatch()
        self._probe_after = probe_after
        self.tick = _tick(config, probe_after)
        # Where the listening sockets are bound (filled by serve(); port 0 gets a real port).
        self.addresses: list[tuple[str, int]] = []
        self._unbound = anyio.Event()  # set once the listening sockets are closed

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return self._ssl

    def reconfigure(self, config: EntrypointConfig, ssl_context: ssl.SSLContext | None) -> None:
        """New settings for the connections accepted from now on; open ones keep theirs.

        The socket stays, so the address must not change (a new address is a new server).
        """
        assert config.address == self.config.address, "a new address needs a new socket"
        scheme = "https" if ssl_context is not None else "http"
        self._settings = ConnectionSettings.from_config(config, scheme=scheme, probe_after=self._probe_after)
        self.config, self._ssl = config, ssl_context
        # Open connections keep their deadlines: the ticker only ever gets finer.
        self.tick = min(self.tick, _tick(config, self._probe_after))

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
                        for conn in list(self._connections):
                            conn.scope.cancel()
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
        """Finish in-flight requests (up to `timeout` seconds), closing every connection."""
        self.stop_accepting()
        self._tracker.draining = True
        for conn in list(self._connections):
            conn.close_if_idle()
        with anyio.move_on_after(timeout):
            await self._wait_empty()
        if self._connections:
            log.warning("drain timeout: cutting %d connections", len(self._connections))
            for conn in list(self._connections):
                conn.scope.cancel()
            with anyio.move_on_after(1.0):
                await self._wait_empty()

    def count_connections(self, gauge: Any) -> None:
        """Move `gauge` (a Gauge child, or None) with the open connections from now on."""
        old, self.connections_gauge = self.connections_gauge, gauge
        if old is not None and old is not gauge:
            old.set(0)  # the entrypoint was renamed, or metrics were turned off
        if gauge is not None:
            gauge.set(len(self._connections))

    def statistics(self) -> ServerStatistics:
        return ServerStatistics(
            len(self._connections),
            self._tracker.in_flight,
            self._tracker.requests,
            self._refused,
            self._accepting,
        )

    # ------------------------------------------------------------------ internals

    async def _wait_empty(self) -> None:
        while self._connections:
            if self._empty is None or self._empty.is_set():
                self._empty = anyio.Event()  # shared by every waiter (serve and drain)
            await self._empty.wait()

    async def _ticker(self) -> None:
        while True:
            await anyio.sleep(self.tick)
            now = time.monotonic()
            for conn in list(self._connections):
                conn.check(now)
            await self._watch.check(now)

    async def _accept_loop(self, sock: socket.socket) -> None:
        assert self._tg is not None
        # Connections started from here inherit it: the owner of the request-body pumps of
        # HTTP/2 upstream exchanges made for HTTP/1.1 clients (see upstream/h2.py).
        PUMPS.set(self._tg)
        STREAM_FACTORY.set(self._wrap)
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

    def _admit(self, stream: anyio.abc.SocketStream, peer: tuple[str, int]) -> None:
        """Start serving an accepted connection (its task is the connection's own `run`)."""
        assert self._tg is not None
        limit = self.config.max_connections
        if (limit is not None and len(self._connections) >= limit) or self._tracker.draining:
            self._refused += 1
            self._tg.start_soon(_refuse, stream)
            return
        conn = HttpConnection(
            stream,
            self._dispatch,
            self._settings,
            self._tracker,
            peer=peer,
            ssl_context=self._ssl,
            watch=self._watch,
            on_close=self._forget,
        )
        self._connections.add(conn)
        if self.connections_gauge is not None:
            self.connections_gauge.inc()
        if self._spawn is not None:
            self._spawn(conn.run)
        else:
            self._tg.start_soon(conn.run)

    def _forget(self, conn: HttpConnection) -> None:
        if conn in self._connections and self.connections_gauge is not None:
            self.connections_gauge.dec()
        self._connections.discard(conn)
        if not self._connections and self._empty is not None:
            self._empty.set()


def _tick(config: EntrypointConfig, probe_after: float) -> float:
    timeouts = config.timeouts
    read_body = timeouts.read_body / 4 or 1  # 0: no body deadline
    return max(0.01, min(0.5, timeouts.read_header / 4, timeouts.idle / 4, probe_after / 2, read_body))


def _peer(addr: object) -> tuple[str, int]:
    return (str(addr[0]), int(addr[1])) if isinstance(addr, tuple) else ("0.0.0.0", 0)


async def _refuse(stream: anyio.abc.SocketStream) -> None:
    try:
        await stream.send(_BUSY)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    await anyio.aclose_forcefully(stream)
