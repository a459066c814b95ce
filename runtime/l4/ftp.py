"""FTP passive mode through a TCP router: the control connection's passive replies rewritten,
and the data connections they announce relayed by the gateway (a service's `ftp {}` block).

    client --control--> gateway --control--> FTP server
           <-- 227 (gateway:P) ---   <-- 227 (server:S) --      (rewritten here)
    client --data to P--> gateway --data to S on the server's address--> FTP server

For each `227` (PASV) or `229` (EPSV) reply of the server (protocols/ftp_replies.py), the
gateway listens on a free port P of `passive_ports` on the address the client reached, names
`passive_address` (or that address) and P in the reply it passes on, and relays the first
connection that comes to P from the client's own address (as FTP servers check, vsftpd's
`pasv_promiscuous=NO`) to port S of the server. The address the server names is not used: the
data connection goes to the server's address, the control connection's peer, so a server
cannot point the gateway elsewhere. A port not taken within `DATA_WAIT` is closed again.

Data connections belong to their control connection: they end with it (an FTP client keeps the
control connection open while a transfer runs). Plain FTP only: an FTPS server's `AUTH TLS`
encrypts the control connection, whose replies then cannot be rewritten.
"""

from __future__ import annotations

import errno
import logging
import random

import anyio
import anyio.abc

from ...compiler.schema import FtpPassive
from ..netio import connect_tcp
from ..protocols.ftp_replies import FtpReplies, Passive
from .relay import Relay, reset

__all__ = ["DATA_WAIT", "FtpControl"]

log = logging.getLogger("a3s_gateway.tcp")

# How long an announced passive port waits for the client's data connection (vsftpd's
# accept_timeout default).
DATA_WAIT = 60.0
NO_PORT = b"425 No passive port free at the gateway.\r\n"


class FtpControl:
    """Rewrites one control connection's passive replies and relays the data connections."""

    def __init__(
        self,
        config: FtpPassive,
        client: anyio.abc.SocketStream,
        server: anyio.abc.SocketStream,
        connect_timeout: float,
        termination_delay: float,
    ) -> None:
        first, _, last = config.passive_ports.partition("-")  # validated by the schema
        self._ports = range(int(first), int(last) + 1)
        local = client.extra(anyio.abc.SocketAttribute.local_address)
        self._bind = str(local[0])
        self._public = config.passive_address or self._bind
        self._client_ip = str(client.extra(anyio.abc.SocketAttribute.remote_address)[0])
        self._server_ip = str(server.extra(anyio.abc.SocketAttribute.remote_address)[0])
        self._connect_timeout, self._delay = connect_timeout, termination_delay
        self._replies = FtpReplies()
        self._tg: anyio.abc.TaskGroup | None = None

    async def run(self, relay: Relay) -> None:
        """Relay the control connection (rewriting on the way back) until it ends."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            relay.rewrite = self.rewrite
            await relay.run()
            tg.cancel_scope.cancel()  # the data connections end with their control connection

    async def rewrite(self, data: bytes) -> bytes:
        """The server's bytes as the client is to see them."""
        out = []
        for item in self._replies.receive_data(data):
            if isinstance(item, Passive):
                port = await self._listen(item.port)
                out.append(NO_PORT if port is None else item.render(self._public, port))
            else:
                out.append(item)
        return b"".join(out)

    async def _listen(self, server_port: int) -> int | None:
        """Listen on a free port of the range for the data connection to `server_port`."""
        assert self._tg is not None
        ports = self._ports
        start = random.randrange(len(ports))  # spreads concurrent transfers over the range
        for i in range(len(ports)):
            port = ports[(start + i) % len(ports)]
            try:
                listeners = await anyio.create_tcp_listener(local_host=self._bind, local_port=port, backlog=1)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    continue
                log.debug("ftp: cannot listen on %s:%d: %r", self._bind, port, exc)
                return None
            listener = listeners.listeners[0]  # one address: one socket
            assert isinstance(listener, anyio.abc.SocketListener)
            self._tg.start_soon(self._data, listener, server_port)
            return port
        log.debug("ftp: every port of %s is taken", self._ports)
        return None

    async def _data(self, listener: anyio.abc.SocketListener, server_port: int) -> None:
        client = None
        async with listener:
            with anyio.move_on_after(DATA_WAIT):
                while client is None:
                    stream = await listener.accept()
                    peer = stream.extra(anyio.abc.SocketAttribute.remote_address)
                    if str(peer[0]) == self._client_ip:
                        client = stream
                    else:  # not the control connection's client: refused, as FTP servers do
                        log.debug(
                            "ftp: data connection from %s refused (client %s)", peer[0], self._client_ip
                        )
                        await anyio.aclose_forcefully(stream)
        if client is None:
            return
        async with client:
            try:
                with anyio.fail_after(self._connect_timeout):
                    server = await connect_tcp(self._server_ip, server_port)
            except (OSError, TimeoutError) as exc:
                log.debug("ftp: data connection to %s:%d failed: %r", self._server_ip, server_port, exc)
                reset(client)
                return
            async with server:
                await Relay(client, server, self._delay).run()
