"""A UDP entrypoint: one socket, a table of sessions keyed by client address, one relay task each.

    datagram from a client -> its session (created on the first one: the entrypoint's one UDP
    router's service picks a backend with its balancer) -> the session's connected socket
    -> the backend's replies -> the session's task -> back to the client from this socket

As Traefik (pkg/udp), UDP routers have no rules: an entrypoint has one router, whose service
takes every datagram. The server has the shape of the TCP and HTTP servers (`serve(gate=...)`,
`stop_accepting()`, `drain()`, `reconfigure()`, `statistics()`), so `EntrypointSet` binds,
hands over on reload and stops it alike.

Bounds (a flood from many source ports costs at most this): `udp_max_sessions` sessions, each
one socket (and on trio one task); past it, the session idle the longest is evicted (the table is ordered
by last activity, in both directions). A session ends after `udp_session_timeout_secs` without
a datagram either way (the ticker walks the table from its idle end). A datagram itself is never
queued: it is sent on at once or dropped (a full buffer drops it, as the network would), so a
datagram never answered costs nothing beyond its session. Datagrams up to 65,535 bytes are
relayed whole (65,507 is IPv4's largest payload).

Readiness: on asyncio and uvloop (`watch`, picked by the launcher) every socket stays registered
with the loop and its datagrams are read in the loop's callback; on trio a task per socket waits
with `anyio.wait_readable`, which registers and unregisters the socket on every wait (that cost
per datagram halved the asyncio rate: docs/l4.md, "Speed"). Both call the same `_received` and
`UdpSession.readable`.

Reload: a kept socket keeps its sessions. A session whose service and backend the new
configuration still has goes on; the others are closed at their next datagram, which opens a
new session on the new configuration. Statistics count datagrams and bytes each way: the seam
for the metrics of UDP sessions (see docs/l4.md).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import anyio.abc

from ...compiler.schema import EntrypointConfig
from ..api import Backend
from ..netio import WatchReadable, bind_udp
from .service import TcpService
from .udp_session import BATCH, UdpRoute, UdpSession

__all__ = ["MAX_DATAGRAM", "UdpServer", "UdpStatistics"]

log = logging.getLogger("a3s_gateway.udp")

MAX_DATAGRAM = 65535

Current = Callable[[], tuple[Any, str]]
"""The current generation, and the name of the entrypoint that owns the socket."""


@dataclass(frozen=True, slots=True)
class UdpStatistics:
    sessions: int
    created: int
    evicted: int
    expired: int
    datagrams_in: int
    datagrams_out: int
    bytes_in: int
    bytes_out: int
    dropped: int
    accepting: bool


class UdpServer:
    def __init__(
        self,
        config: EntrypointConfig,
        current: Current,
        *,
        reuse_port: bool = False,
        watch: WatchReadable | None = None,
        **_: Any,
    ) -> None:
        self.config = config
        self._current = current
        self._reuse_port = reuse_port
        # The loop's own readers (asyncio): a socket stays registered and its datagrams are read
        # in the loop's callback, with no task switch and no epoll_ctl per wake. None: a task
        # per socket waits with `anyio.wait_readable` (trio).
        self.watch = watch
        # Replies read per wake-up of a session's socket. A session mostly has one reply waiting
        # (a request, an answer), and the loop's readers are level-triggered: it calls again while
        # more wait, so reading one saves the failing read (and its exception) that ends a batch.
        # A task per socket (trio) registers again for every wait: it reads a batch.
        self.reply_batch = 1 if watch is not None else BATCH
        # Least recently active first: the ticker expires from the front, a full table evicts it.
        self.sessions: OrderedDict[Any, UdpSession] = OrderedDict()
        # Datagrams are relayed synchronously after each receive, so the client side shares one
        # buffer and every session shares the other.
        self._buffer = bytearray(MAX_DATAGRAM + 1)
        self._view = memoryview(self._buffer)
        self.reply_buffer = bytearray(MAX_DATAGRAM + 1)
        self.reply_view = memoryview(self.reply_buffer)
        self.now = time.monotonic()  # the ticker's clock; sessions stamp their activity with it
        self.tick = _tick(config)
        self._resolved: dict[str, tuple[int, Any]] = {}  # backend address -> (family, sockaddr)
        self._scope = anyio.CancelScope()
        self._tg: anyio.abc.TaskGroup | None = None
        self._unbound = anyio.Event()
        self._accepting = False
        self.addresses: list[tuple[str, int]] = []
        self._counts = dict.fromkeys(
            ("created", "evicted", "expired", "datagrams_in", "datagrams_out", "bytes_in", "bytes_out"), 0
        )
        self._dropped = 0

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return None  # DTLS is not offered; the compiler refuses tls on a UDP entrypoint

    async def serve(
        self,
        *,
        gate: anyio.Event | None = None,
        task_status: anyio.abc.TaskStatus[Any] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Bind, report `(host, port)`, relay once `gate` is set, until `stop_accepting`."""
        sockets = await bind_udp(self.config.host, self.config.port, reuse_port=self._reuse_port)
        self.addresses = [(str(a[0]), int(a[1])) for a in (s.getsockname() for s in sockets)]
        unwatch: list[Callable[[], object]] = []
        try:
            with self._scope:  # cancelled by stop_accepting: the loops, sessions and lookups end
                task_status.started(self.addresses[0])
                if gate is not None:
                    await gate.wait()
                self._accepting = True
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    tg.start_soon(self._ticker)
                    for sock in sockets:
                        if self.watch is not None:
                            unwatch.append(self.watch(sock, partial(self._received, sock)))
                        else:
                            tg.start_soon(self._receive_loop, sock)
        finally:
            self._accepting = False
            self._close_sessions()
            for stop in unwatch:
                stop()
            for sock in sockets:
                anyio.notify_closing(sock)
                sock.close()
            self._unbound.set()

    def stop_accepting(self) -> None:
        """End every session and close the socket (replies could go out of no other)."""
        self._accepting = False
        self._scope.cancel()

    async def wait_unbound(self) -> None:
        await self._unbound.wait()

    async def drain(self, timeout: float) -> None:
        """UDP has nothing in flight to wait for: stop, and return once the socket is closed."""
        self.stop_accepting()
        with anyio.move_on_after(timeout):
            await self.wait_unbound()

    def reconfigure(self, config: EntrypointConfig, ssl_context: ssl.SSLContext | None) -> None:
        """New session timeout and cap; the sessions carry on (the ticker applies a lower cap)."""
        assert config.address == self.config.address, "a new address needs a new socket"
        self.config, self.tick = config, _tick(config)

    def statistics(self) -> UdpStatistics:
        c = self._counts
        return UdpStatistics(
            len(self.sessions),
            c["created"],
            c["evicted"],
            c["expired"],
            c["datagrams_in"],
            c["datagrams_out"],
            c["bytes_in"],
            c["bytes_out"],
            self._dropped,
            self._accepting,
        )

    # ------------------------------------------------------------------ used by sessions

    def count_replies(self, count: int, size: int, dropped: int) -> None:
        """What a session's `readable` relayed to its client (added up per wake-up)."""
        c = self._counts
        c["datagrams_out"] += count
        c["bytes_out"] += size
        self._dropped += dropped

    def forget(self, session: UdpSession) -> None:
        if self.sessions.get(session.client) is session:
            del self.sessions[session.client]

    def resolved(self, backend: Backend) -> tuple[int, Any] | None:
        """The socket address of `backend` if known without a lookup (an IP, or resolved before)."""
        address = self._resolved.get(backend.url)
        if address is None:
            host, _, port = backend.url.rpartition(":")
            host = host.strip("[]")
            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                return None
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            address = self._resolved[backend.url] = (family, (host, int(port)))
        return address

    # ------------------------------------------------------------------ internals

    async def _resolve(self, backend: Backend) -> tuple[int, Any] | None:
        """A host name's first address, looked up once per server (backends are usually IPs)."""
        host, _, port = backend.url.rpartition(":")
        try:
            found = await anyio.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_DGRAM)
        except OSError:
            return None
        family, _, _, _, sockaddr = found[0]
        address = self._resolved[backend.url] = (int(family), sockaddr[:2])
        return address

    async def _receive_loop(self, front: socket.socket) -> None:
        while True:
            await anyio.wait_readable(front)
            self._received(front)

    def _received(self, front: socket.socket) -> None:
        """Relay what `front` has, up to BATCH datagrams (a busy client cannot hold the loop).

        The hot path of the relay: what does not change within one call (the generation, the
        route, the buffer) is looked up once, counts are added up once at the end, and a datagram
        of a known session is sent straight on its socket (a session's `send` only on error).
        """
        buf, view, sessions = self._buffer, self._view, self.sessions
        recvfrom_into, get, to_end = front.recvfrom_into, sessions.get, sessions.move_to_end
        graph, name = self._current()  # a reload cannot happen during this call
        route = graph.udp_routes.get(name)
        now = self.now
        count = size = 0
        try:
            for _ in range(BATCH):
                n, client = recvfrom_into(buf)
                count += 1
                size += n
                session = get(client)
                if session is not None and session.route is route and (sock := session.sock) is not None:
                    session.last = now
                    to_end(client)
                    try:
                        sock.send(view[:n])
                    except BlockingIOError:
                        pass  # a full buffer drops it, as the network would
                    except OSError as exc:
                        session.failed(exc, bytes(view[:n]))
                else:
                    self._open(client, bytes(view[:n]), front, route, session)
        except BlockingIOError:
            pass
        except OSError as exc:
            log.debug("udp %s: receive failed: %r", self.config.address, exc)
        finally:
            counts = self._counts
            counts["datagrams_in"] += count
            counts["bytes_in"] += size

    def _open(
        self, client: Any, data: bytes, front: socket.socket, route: UdpRoute | None, old: UdpSession | None
    ) -> None:
        """The first datagram of a client, or the first since a reload changed its route."""
        if old is not None:
            if route is not None and old.keeps(route):
                old.last = self.now
                self.sessions.move_to_end(client)
                old.send(data)
                return
            old.close()
        if route is None:
            self._dropped += 1
            return
        target: TcpService = route.service.target()
        backend = target.pick()
        if backend is None:
            log.debug("udp %s: service %s has no available backend", client, route.service.name)
            self._dropped += 1
            return
        address = self.resolved(backend)
        if address is None:  # a host name not looked up yet: this datagram waits for the lookup
            assert self._tg is not None
            self._tg.start_soon(self._open_resolved, client, data, front, route, target, backend)
            return
        self._start(client, data, front, route, target, backend, address)

    async def _open_resolved(
        self,
        client: Any,
        data: bytes,
        front: socket.socket,
        route: UdpRoute,
        target: TcpService,
        backend: Backend,
    ) -> None:
        address = await self._resolve(backend)
        session = self.sessions.get(client)
        if session is not None:  # opened while this lookup ran (by an earlier datagram's)
            session.send(data)
        elif address is None:
            log.debug("udp %s: cannot resolve %s", client, backend.url)
            self._dropped += 1
        elif self._accepting:
            self._start(client, data, front, route, target, backend, address)

    def _start(
        self,
        client: Any,
        data: bytes,
        front: socket.socket,
        route: UdpRoute,
        target: TcpService,
        backend: Backend,
        address: tuple[int, Any],
    ) -> None:
        while len(self.sessions) >= self.config.udp_max_sessions:
            self._counts["evicted"] += 1
            self.sessions.popitem(last=False)[1].close()
        session = UdpSession(self, client, front, route, self.now)
        try:
            session.open(target, backend, address)
        except OSError as exc:
            log.debug("udp %s: cannot open a socket to %s: %r", client, backend.url, exc)
            self._dropped += 1
            return
        self.sessions[client] = session
        self._counts["created"] += 1
        if self.watch is None:
            assert self._tg is not None
            self._tg.start_soon(session.run)
        session.send(data)

    async def _ticker(self) -> None:
        while True:
            await anyio.sleep(self.tick)
            self.now = now = time.monotonic()
            cutoff = now - self.config.udp_session_timeout_secs
            cap = self.config.udp_max_sessions
            sessions = self.sessions
            while sessions:
                oldest = next(iter(sessions.values()))
                if oldest.last > cutoff and len(sessions) <= cap:
                    break
                self._counts["expired" if oldest.last <= cutoff else "evicted"] += 1
                oldest.close()

    def _close_sessions(self) -> None:
        for session in list(self.sessions.values()):
            session.close()


def _tick(config: EntrypointConfig) -> float:
    return max(0.01, min(0.5, config.udp_session_timeout_secs / 4))
