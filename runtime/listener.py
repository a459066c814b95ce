"""An HTTP entrypoint: binds, accepts, and runs one `HttpConnection` task per client.

One task group per entrypoint owns every connection task, the accept loops and the ticker.
The ticker is the entrypoint's only clock: every `tick` seconds it asks each connection to
check its published deadlines (see connection.py), which keeps timeouts off the per-request
path. Ticks are a fraction of the shortest timeout, so a deadline fires at most one tick late.

Connection limit: past `max_connections` (and while draining), a new connection is accepted,
answered with a minimal 503 (Connection: close) and closed at once, without reading its
request: the client learns why instead of hanging in the backlog, and costs only that write.

Binding, accepting and tracking connection tasks are the `Acceptor`'s (acceptor.py), which the
TCP entrypoints' server shares.

Shutdown is two calls: `stop_accepting()` closes the listening sockets; `drain(timeout)`
closes idle keep-alive connections, lets in-flight requests and streams finish (their
responses carry `Connection: close`), and cancels what is still running at the deadline.

Reload: a server whose address stays keeps its socket and its connections; `reconfigure()`
gives it the entrypoint's new settings (timeouts, limits, TLS), which apply to the connections
it accepts from then on, while each open connection keeps the settings it was accepted with.
"""

from __future__ import annotations

import logging
import ssl
import time
from dataclasses import dataclass

import anyio
import anyio.abc

from ..compiler.schema import EntrypointConfig
from . import deadlines
from .acceptor import ACCEPT_BATCH, Acceptor
from .api import Handler
from .callback_path import DirectSource
from .connection import ConnectionSettings, ConnectionTracker, HttpConnection
from .events import ResponseHead
from .netio import SocketStream, Spawn, StreamFactory
from .protocols import render_response
from .upstream.h2 import PUMPS

__all__ = ["ACCEPT_BATCH", "HttpServer", "ServerStatistics"]

log = logging.getLogger("a3s_gateway.listener")

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
    # Of `requests`, those the loop's callbacks served (callback_path.py; 0 on trio).
    direct: int


class HttpServer(Acceptor):
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
        direct: DirectSource | None = None,
    ) -> None:
        super().__init__(config, reuse_port=reuse_port, stream_factory=stream_factory, spawn=spawn)
        self._dispatch = dispatch
        self._direct = direct
        self._ssl = ssl_context
        scheme = "https" if ssl_context is not None else "http"
        self._settings = ConnectionSettings.from_config(config, scheme=scheme, probe_after=probe_after)
        self._tracker = ConnectionTracker()
        self._connections: set[HttpConnection] = set()
        self._refused = 0
        self._watch = deadlines.DeadlineWatch()
        self._probe_after = probe_after
        self.tick = _tick(config, probe_after)

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

    def _start_draining(self) -> None:
        # In-flight requests finish (their responses say Connection: close); idle ones close now.
        self._tracker.draining = True
        for conn in list(self._connections):
            conn.close_if_idle()

    def statistics(self) -> ServerStatistics:
        return ServerStatistics(
            len(self._connections),
            self._tracker.in_flight,
            self._tracker.requests,
            self._refused,
            self._accepting,
            self._tracker.direct,
        )

    # ------------------------------------------------------------------ internals

    async def _ticker(self) -> None:
        while True:
            await anyio.sleep(self.tick)
            now = time.monotonic()
            for conn in list(self._connections):
                conn.check(now)
            await self._watch.check(now)

    def _accept_context(self) -> None:
        super()._accept_context()
        # The owner of the request-body pumps of HTTP/2 upstream exchanges made for HTTP/1.1
        # clients (see upstream/h2.py), inherited by the connections started from here.
        assert self._tg is not None
        PUMPS.set(self._tg)

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
            direct=self._direct,
        )
        self._start(conn)


def _tick(config: EntrypointConfig, probe_after: float) -> float:
    timeouts = config.timeouts
    read_body = timeouts.read_body / 4 or 1  # 0: no body deadline
    return max(0.01, min(0.5, timeouts.read_header / 4, timeouts.idle / 4, probe_after / 2, read_body))


async def _refuse(stream: anyio.abc.SocketStream) -> None:
    try:
        await stream.send(_BUSY)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    await anyio.aclose_forcefully(stream)
