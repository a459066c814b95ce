"""One UDP session: a client address, the backend its balancer chose, and the socket between.

A session owns a socket connected to its backend (so the kernel filters what comes back, and
an ICMP "port unreachable" from a vanished backend surfaces as `ConnectionRefusedError` on
the next send or receive) and a reader (the loop's callback, or on trio one task) that relays
the backend's datagrams to the client from the entrypoint's socket, the one the client wrote to
(clients match replies by address).

A backend that refuses is reported to the service's passive health and the session moves to
another backend of the same service (never one it already tried); the datagram being sent
when the refusal surfaced goes to the new backend, one already lost is not replayed (the
client's retry is: DNS resolvers retry). With no backend left, the session ends.

Sessions hold no graph generation: a reload keeps a session whose service and backend the new
configuration still has (`keeps`), and the server closes the others at their next datagram.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

from ..api import Backend
from .service import TcpService

if TYPE_CHECKING:
    from .udp_server import UdpServer

__all__ = ["BATCH", "UdpRoute", "UdpSession"]

log = logging.getLogger("a3s_gateway.udp")

# Datagrams relayed per wake-up before yielding: a busy peer cannot monopolise the loop.
BATCH = 64


class UdpRoute:
    """What a UDP entrypoint's datagrams go to in one generation: its one router's service."""

    __slots__ = ("router", "service")

    def __init__(self, router: str, service: TcpService) -> None:
        self.router, self.service = router, service


class UdpSession:
    __slots__ = (
        "backend",
        "client",
        "closed",
        "front",
        "last",
        "route",
        "server",
        "sock",
        "target",
        "tried",
        "unwatch",
    )

    def __init__(
        self, server: UdpServer, client: Any, front: socket.socket, route: UdpRoute, now: float
    ) -> None:
        self.server, self.client, self.front, self.route = server, client, front, route
        self.target: TcpService = route.service
        self.backend: Backend | None = None
        self.sock: socket.socket | None = None
        self.unwatch: Callable[[], object] | None = None  # stops the loop's reader (server.watch)
        self.tried: set[str] = set()
        self.last = now
        self.closed = False

    def open(self, target: TcpService, backend: Backend, address: tuple[int, Any]) -> None:
        """Connect a fresh socket to `backend` (an address resolved by the server)."""
        family, sockaddr = address
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            sock.connect(sockaddr)  # UDP: no packet is sent, the kernel only records the peer
        except BaseException:
            sock.close()
            raise
        self.target, self.backend, self.sock = target, backend, sock
        backend.in_flight += 1
        if self.server.watch is not None:
            self.unwatch = self.server.watch(sock, self.readable)

    def keeps(self, route: UdpRoute) -> bool:
        """Whether a reload that made `route` current keeps this session (same service and backend)."""
        service = route.service
        target = service if service.name == self.target.name else service.services.get(self.target.name)
        if target is None or self.route.service.name != service.name:
            return False
        if not any(b is self.backend for b in target.backends):
            return False
        self.route, self.target = route, target
        return True

    def send(self, data: Any) -> None:
        """Relay a client datagram; a full socket buffer drops it, as the network would."""
        sock = self.sock
        if sock is None:
            return
        try:
            sock.send(data)
        except BlockingIOError:
            pass
        except OSError as exc:  # ICMP port unreachable of an earlier datagram, mostly
            self.failed(exc, data)

    def failed(self, exc: OSError, data: Any) -> None:
        """Sending `data` raised `exc`: move to another backend and send it there."""
        if self._move(exc):
            self.send(data)

    async def run(self) -> None:
        """Relay the backend's datagrams to the client until the session is closed (when the
        server has no `watch`: otherwise the loop calls `readable` itself)."""
        try:
            while not self.closed:
                sock = self.sock
                if sock is None:
                    break
                try:
                    await anyio.wait_readable(sock)
                except (anyio.ClosedResourceError, OSError):
                    continue  # moved to another backend (a new socket), or closed
                self.readable()
        finally:
            self.close()

    def readable(self) -> None:
        """Relay what the backend sent to the client, up to BATCH datagrams.

        Sent from the entrypoint's socket, the one the client wrote to; a full buffer or an
        unreachable client drops the datagram, as UDP may. Counts are added up once per call.
        """
        sock, server = self.sock, self.server
        if sock is None:
            return
        buf, view = server.reply_buffer, server.reply_view
        recv_into, sendto, client = sock.recv_into, self.front.sendto, self.client
        count = size = dropped = 0
        try:
            for _ in range(server.reply_batch):
                n = recv_into(buf)
                try:
                    sendto(view[:n], client)
                except OSError:
                    dropped += 1
                    continue
                count += 1
                size += n
        except BlockingIOError:
            pass
        except OSError as exc:
            self._move(exc)
        if count:
            self.last = server.now
            sessions = server.sessions
            if sessions.get(client) is self:
                sessions.move_to_end(client)
        server.count_replies(count, size, dropped)

    def close(self) -> None:
        """End the session now: its socket closes (waking its task), its backend is counted out."""
        if self.closed:
            return
        self.closed = True
        self.server.forget(self)
        self._close_socket()

    # ------------------------------------------------------------------ internals

    def _move(self, exc: OSError) -> bool:
        """The backend refused (or the socket failed): report it, and take another backend."""
        backend = self.backend
        if backend is None or self.closed:
            return False
        log.debug("udp %s: backend %s failed (%r), re-balancing", self.client, backend.url, exc)
        self.target.health.report_failure(backend, self.target.clock.now())
        self.tried.add(backend.key)
        self._close_socket()
        picked = self.target.pick(self.tried)
        address = self.server.resolved(picked) if picked is not None else None
        if picked is None or address is None:
            self.close()
            return False
        try:
            self.open(self.target, picked, address)
        except OSError:
            self.close()
            return False
        return True

    def _close_socket(self) -> None:
        sock, backend = self.sock, self.backend
        if backend is not None:
            backend.in_flight -= 1
            self.backend = None
        if self.unwatch is not None:
            self.unwatch()
            self.unwatch = None
        if sock is not None:
            self.sock = None
            anyio.notify_closing(sock)
            sock.close()
