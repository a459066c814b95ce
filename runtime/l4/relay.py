"""The byte relay between a client and its backend: both directions, with backpressure.

Each direction is one task that reads at most `CHUNK` bytes and writes them before it reads
again; a write returns once the kernel has taken every byte (both socket streams work so), so
a side that reads slowly stops the reads on the other side: at most one chunk per direction is
held in user space, whatever the speeds.

Half-close, as Traefik's TCP proxy (pkg/tcp/proxy.go) and its `terminationDelay`: when one side
ends its writing (FIN), the relay passes the FIN on (`send_eof`) and the other direction may go
on for `termination_delay` seconds more, then the connection closes. A terminated TLS client
has no half-close (anyio's TLS stream cannot send close_notify alone), so its backend's FIN
closes it, after the bytes before it.

Faults: a reset or a broken pipe on either side ends both directions at once; the side still
open is then reset too (SO_LINGER 0: RST instead of FIN, where the OS allows), so a client sees
its backend disappear as a reset, not as a clean end of data. `Relay.backend_failed` tells the
caller whether the backend is to blame (passive health).

Idle: `Relay.active` is set on every chunk; the server's ticker reads and clears it and cuts
the connection after `idle` seconds without a byte (runtime/l4/server.py), so the relay pays
one attribute store per chunk and no timer.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Awaitable, Callable

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

__all__ = ["CHUNK", "Relay", "reset"]

CHUNK = 65536
_LINGER_RESET = struct.pack("ii", 1, 0)
_FAULTS = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


def reset(stream: anyio.abc.AnyByteStream) -> None:
    """Make the next close of `stream` send a RST (best effort)."""
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
    if isinstance(sock, socket.socket) and sock.fileno() >= 0:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        except OSError:
            pass


class Relay:
    """Relays one client connection to one backend connection until both are done."""

    __slots__ = (
        "_cancel",
        "_delay",
        "active",
        "backend",
        "backend_failed",
        "client",
        "client_failed",
        "received",
        "rewrite",
        "sent",
    )

    def __init__(
        self, client: anyio.abc.ByteStream, backend: anyio.abc.ByteStream, termination_delay: float
    ) -> None:
        self.client, self.backend = client, backend
        self._delay = termination_delay
        self.active = False
        self.backend_failed = False
        self.client_failed = False
        # Bytes from the client to the backend and back: the seam for per-router byte counters.
        self.sent = 0
        self.received = 0
        self._cancel: anyio.CancelScope | None = None
        # What the client is to see of the backend's bytes, when not those bytes (FTP's control
        # connection, ftp.py); None: relayed untouched.
        self.rewrite: Callable[[bytes], Awaitable[bytes]] | None = None

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            self._cancel = tg.cancel_scope
            upstream, downstream = anyio.CancelScope(), anyio.CancelScope()
            tg.start_soon(self._pump, self.client, self.backend, upstream, downstream, True)
            tg.start_soon(self._pump, self.backend, self.client, downstream, upstream, False)
        if self.backend_failed:
            reset(self.client)
        elif self.client_failed:
            reset(self.backend)

    async def _pump(
        self,
        src: anyio.abc.ByteStream,
        dst: anyio.abc.ByteStream,
        scope: anyio.CancelScope,
        other: anyio.CancelScope,
        outbound: bool,
    ) -> None:
        with scope:
            while True:
                try:
                    data = await src.receive(CHUNK)
                except anyio.EndOfStream:
                    await self._half_close(dst, other)
                    return
                except _FAULTS:
                    self._failed(src)
                    break
                self.active = True
                if outbound:
                    self.sent += len(data)
                else:
                    self.received += len(data)
                    if self.rewrite is not None:
                        data = await self.rewrite(data)
                        if not data:
                            continue
                try:
                    await dst.send(data)
                except _FAULTS:
                    self._failed(dst)
                    break
        # A fault (or this direction cut by the other's termination delay): end both directions.
        if self._cancel is not None:
            self._cancel.cancel()

    async def _half_close(self, dst: anyio.abc.ByteStream, other: anyio.CancelScope) -> None:
        if isinstance(dst, TLSStream):
            # No half-close on TLS: everything before the FIN has been written; close.
            other.cancel()
            return
        try:
            await dst.send_eof()
        except _FAULTS:
            other.cancel()
            return
        other.deadline = min(other.deadline, anyio.current_time() + self._delay)

    def _failed(self, side: anyio.abc.ByteStream) -> None:
        if side is self.backend:
            self.backend_failed = True
        else:
            self.client_failed = True
