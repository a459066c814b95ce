"""A TCP entrypoint: binds, accepts, and runs one `TcpConnection` task per client.

Binding, accepting and tracking the connection tasks are the `Acceptor`'s (runtime/acceptor.py),
shared with the HTTP entrypoints' server, so `EntrypointSet` binds, hands over on reload and
drains both alike: `serve(gate=...)`, `stop_accepting()`, `drain()`, `reconfigure()`,
`statistics()`.

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
import ssl
import time
from dataclasses import dataclass

import anyio
import anyio.abc

from ...compiler.schema import EntrypointConfig
from ..acceptor import Acceptor
from ..netio import SocketStream, Spawn, StreamFactory
from .connection import Current, TcpConnection, TcpEntrypoint

__all__ = ["TcpServer", "TcpStatistics"]

log = logging.getLogger("a3s_gateway.tcp")


@dataclass(frozen=True, slots=True)
class TcpStatistics:
    connections: int
    accepted: int
    refused: int
    accepting: bool


class TcpServer(Acceptor):
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
        super().__init__(config, reuse_port=reuse_port, stream_factory=stream_factory, spawn=spawn)
        self._entrypoint = TcpEntrypoint(config, ssl_context)
        self._current = current
        self._connections: set[TcpConnection] = set()
        self._accepted = 0
        self._refused = 0
        self._draining = False
        self.tick = _tick(config)

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return self._entrypoint.ssl_context

    def reconfigure(self, config: EntrypointConfig, ssl_context: ssl.SSLContext | None) -> None:
        """New settings for the connections accepted from now on; open ones keep theirs."""
        assert config.address == self.config.address, "a new address needs a new socket"
        self.config, self._entrypoint = config, TcpEntrypoint(config, ssl_context)
        self.tick = min(self.tick, _tick(config))

    def _start_draining(self) -> None:
        self._draining = True  # open connections relay on until they end or the drain cuts them

    def statistics(self) -> TcpStatistics:
        return TcpStatistics(len(self._connections), self._accepted, self._refused, self._accepting)

    # ------------------------------------------------------------------ internals

    async def _ticker(self) -> None:
        while True:
            await anyio.sleep(self.tick)
            now = time.monotonic()
            for conn in list(self._connections):
                conn.check(now)

    def _admit(self, stream: anyio.abc.SocketStream, peer: tuple[str, int]) -> None:
        entrypoint = self._entrypoint
        limit = self.config.max_connections
        full = limit is not None and len(self._connections) >= limit
        if full or self._draining or not entrypoint.admits(peer[0]):
            self._refused += 1
            _close_now(stream)  # before reading a byte: the peer sees the close
            return
        self._accepted += 1
        self._start(TcpConnection(stream, peer, entrypoint, self._current, self._forget, time.monotonic()))


def _close_now(stream: anyio.abc.SocketStream) -> None:
    close = getattr(stream, "close", None)  # both socket streams close synchronously
    if close is not None:
        close()


def _tick(config: EntrypointConfig) -> float:
    return max(0.01, min(0.5, config.timeouts.idle / 4))
