"""One relayed TCP connection, from the accept to the last byte.

    [PROXY header, trusted peers only] -> [tcp_allowed_ips on the real client]
    -> peek the ClientHello (only when the entrypoint has TLS routers; bounded by
       `timeouts.read_header` and MAX_HELLO) -> route -> tcp-filter middlewares
    -> TLS termination (router `tls {}`) or passthrough -> connect a backend (service.py)
    -> [PROXY header to the backend] -> the peeked bytes -> relay (relay.py)

A ClientHello that offers `acme-tls/1` for a name whose TLS-ALPN-01 challenge the gateway has
pending is the ACME server validating it: it is answered before any router (the SNI callback,
runtime/tls.py, picks the challenge certificate), then closed, so a rule with an ALPN() matcher
cannot shadow it (Traefik's TCP router answers acme-tls/1 first too). Other acme-tls/1 hellos are
routed as usual: a backend behind a passthrough router may be validating its own certificate.

Every way out is a close: a client that sends garbage, an SSLv2 or oversized hello, nothing
(the read_header deadline), or that no router takes, is closed without a byte in reply; a
refused or failed backend resets the client (RST). Nothing raises past `run`: errors are
logged at debug level, never as a traceback.

The connection pins the generation it was accepted on (`graph.hold()`): its router, service
and backend stay what they were until it closes, whatever reloads happen meanwhile.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from ...compiler.route import TcpProbe
from ...compiler.schema import EntrypointConfig
from ...stdlib.common.ipnet import IPSet
from ..observe.l4_meters import TcpMeters, TcpRouteMeter
from ..protocols.clienthello import MAX_HELLO, ClientHello
from ..protocols.proxy_protocol import encode_proxy_header
from .peek import Replayed, peek_hello
from .proxy_accept import read_proxy_header
from .relay import Relay, reset
from .routes import TcpRoute
from .service import NoBackend

__all__ = ["TcpConnection", "TcpEntrypoint"]

log = logging.getLogger("a3s_gateway.tcp")

# RFC 8737's ALPN protocol (runtime/acme/table.py's ACME_TLS_ALPN, not imported: the ACME
# package loads only when resolvers are configured).
_ACME_TLS_ALPN = "acme-tls/1"

Current = Callable[[], tuple[Any, str]]
"""The generation new connections route on, and the name of the entrypoint that owns the socket."""


class TcpEntrypoint:
    """What a TCP entrypoint's connections read from its config, computed once per (re)config."""

    def __init__(self, config: EntrypointConfig, ssl_context: ssl.SSLContext | None) -> None:
        self.config = config
        self.ssl_context = ssl_context
        # Per-host TLS options: the context of each router's HostSNI names. (Imported here:
        # tls_select reads ClientHellos with l4/peek.py, so it imports this package.)
        from ..tls_select import sni_contexts

        self.by_sni = sni_contexts(ssl_context)
        # The names with a TLS-ALPN-01 challenge pending (a live dict, runtime/tls.py), when the
        # context serves ACME certificates; empty nearly always, so a connection pays one test.
        self.acme_challenges: Mapping[str, object] | None = getattr(ssl_context, "a3s_acme_challenges", None)
        # ...answered by a context without the hosts' TLS options (runtime/tls_select.py).
        plain = self.by_sni.plain if self.by_sni is not None else None
        self.acme_context = plain if plain is not None else ssl_context
        self.allowed = IPSet(config.tcp_allowed_ips)
        accept = config.proxy_protocol
        self.proxy_trusted = IPSet(accept.trusted_ips) if accept is not None else None
        self.read_header = config.timeouts.read_header
        self.idle = config.timeouts.idle

    def trusts(self, peer_ip: str) -> bool:
        """Whether `peer_ip` may send a PROXY header."""
        return self.proxy_trusted is not None and self.proxy_trusted.contains(peer_ip)

    def admits(self, peer_ip: str) -> bool:
        """The accept-time filter: `tcp_allowed_ips` on the peer (on a trusted proxy's client,
        once its PROXY header is read)."""
        return not self.allowed or self.trusts(peer_ip) or self.allowed.contains(peer_ip)


class TcpConnection:
    __slots__ = (
        "_current",
        "_on_close",
        "counted",
        "entrypoint",
        "last",
        "meter",
        "peer",
        "relay",
        "scope",
        "started",
        "stream",
    )

    def __init__(
        self,
        stream: anyio.abc.SocketStream,
        peer: tuple[str, int],
        entrypoint: TcpEntrypoint,
        current: Current,
        on_close: Callable[[TcpConnection], None],
        now: float,
    ) -> None:
        self.stream, self.peer, self.entrypoint = stream, peer, entrypoint
        self._current, self._on_close = current, on_close
        self.scope = anyio.CancelScope()
        self.relay: Relay | None = None
        self.last = self.started = now
        # Metrics on: the router's meter, and the relay's (sent, received) counted so far.
        self.meter: TcpRouteMeter | None = None
        self.counted = (0, 0)

    def check(self, now: float) -> None:
        """The server's ticker: cut a relay idle for `timeouts.idle` (see relay.py)."""
        relay = self.relay
        if relay is None:
            return
        if relay.active:
            relay.active, self.last = False, now
            if self.meter is not None:
                self._count(relay)
        elif now - self.last >= self.entrypoint.idle:
            log.debug("tcp %s: idle for %gs, closed", self.peer[0], self.entrypoint.idle)
            self.scope.cancel()

    async def run(self) -> None:
        try:
            with self.scope:
                graph, name = self._current()
                release = graph.hold()
                try:
                    await self._serve(graph.tcp_tables.get(name), graph.tcp_meters)
                finally:
                    release()
        except Exception as exc:  # never a traceback for a connection: it is closed
            log.debug("tcp connection from %s closed: %r", self.peer[0], exc)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.aclose_forcefully(self.stream)
            self._on_close(self)

    def _count(self, relay: Relay) -> None:
        """Add what the relay moved since the last count to the router's byte counters."""
        assert self.meter is not None
        sent, received = relay.sent, relay.received
        self.meter.count(sent - self.counted[0], received - self.counted[1])
        self.counted = (sent, received)

    async def _serve(self, table: Any, meters: TcpMeters | None) -> None:
        if table is None:
            return
        ep = self.entrypoint
        client_ip, first = self.peer[0], b""
        with anyio.move_on_after(ep.read_header) as opening:
            if ep.proxy_trusted is not None:
                client_ip, first = await self._proxy_header(client_ip)
                # A trusted proxy was let in at accept: the filter applies to its client.
                if ep.trusts(self.peer[0]) and ep.allowed and not ep.allowed.contains(client_ip):
                    return
            if table.needs_peek:
                hello, first = await peek_hello(self.stream, MAX_HELLO, first)
                if isinstance(hello, ClientHello):
                    probe = TcpProbe(hello.sni, hello.alpn, client_ip, tls=True)
                else:
                    probe = TcpProbe(None, (), client_ip, tls=False)
            else:
                probe = TcpProbe(None, (), client_ip, tls=False)
        if opening.cancelled_caught:
            log.debug("tcp %s: nothing routable within %gs, closed", client_ip, ep.read_header)
            return
        challenges = ep.acme_challenges
        if (
            challenges
            and _ACME_TLS_ALPN in probe.alpn
            and (probe.sni or "").lower().rstrip(".") in challenges
        ):
            await self._answer_acme_tls(first)
            return
        route = table.route(probe)
        if route is None:
            log.debug("tcp %s: no router matches %s", client_ip, probe)
            return
        if meters is not None:
            self.meter = meters.get(table.entrypoint, route.router)
        await self._filtered(route, client_ip, first, probe.sni)

    async def _answer_acme_tls(self, first: bytes) -> None:
        """Complete a TLS-ALPN-01 validation handshake (the challenge certificate), then close."""
        assert self.entrypoint.ssl_context is not None
        with anyio.fail_after(self.entrypoint.read_header):
            tls = await TLSStream.wrap(
                Replayed(self.stream, first),
                server_side=True,
                ssl_context=self.entrypoint.acme_context,
                standard_compatible=False,
            )
        await anyio.aclose_forcefully(tls)

    async def _proxy_header(self, peer_ip: str) -> tuple[str, bytes]:
        header, rest = await read_proxy_header(self.stream, self.entrypoint.trusts(peer_ip))
        return (header.source[0] if header is not None and header.source else peer_ip), rest

    async def _filtered(self, route: TcpRoute, client_ip: str, first: bytes, sni: str | None) -> None:
        admitted: list[Any] = []
        try:
            for state in route.filters:
                if not state.admit(client_ip):
                    log.debug("tcp %s: refused by a tcp-filter of router %s", client_ip, route.router)
                    return
                admitted.append(state)
            await self._forward(route, client_ip, first, sni)
        finally:
            for state in admitted:
                state.release()

    async def _forward(self, route: TcpRoute, client_ip: str, first: bytes, sni: str | None) -> None:
        client: anyio.abc.ByteStream = self.stream
        if route.tls == "terminate":
            by_sni = self.entrypoint.by_sni
            context = self.entrypoint.ssl_context if by_sni is None else by_sni.choose(sni)
            if context is None:
                return
            with anyio.fail_after(self.entrypoint.read_header):
                client = await TLSStream.wrap(
                    Replayed(self.stream, first),
                    server_side=True,
                    ssl_context=context,
                    standard_compatible=False,
                )
            first = b""
        try:
            upstream = await route.service.connect()
        except NoBackend as exc:
            log.debug("tcp %s: %s", client_ip, exc)
            reset(self.stream)
            return
        relay = Relay(client, upstream.stream, route.service.timeouts.termination_delay)
        try:
            prefix = first
            if route.service.proxy_protocol is not None:
                prefix = self._proxy_header_for(route, client_ip) + first
            if prefix:
                await upstream.stream.send(prefix)
            self.relay = relay
            if route.service.ftp is None:
                await relay.run()
            else:
                from .ftp import FtpControl

                timeouts = route.service.timeouts
                ftp = FtpControl(
                    route.service.ftp,
                    self.stream,
                    upstream.stream,
                    timeouts.connect,
                    timeouts.termination_delay,
                )
                await ftp.run(relay)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            relay.backend_failed = True
            reset(self.stream)
        finally:
            self.relay = None
            if self.meter is not None:
                self._count(relay)
                self.meter.duration.observe(time.monotonic() - self.started)
            upstream.release(failed=relay.backend_failed)
            with anyio.CancelScope(shield=True):
                await anyio.aclose_forcefully(upstream.stream)

    def _proxy_header_for(self, route: TcpRoute, client_ip: str) -> bytes:
        local = self.stream.extra(anyio.abc.SocketAttribute.local_address, ("0.0.0.0", 0))
        source = (client_ip, self.peer[1])
        destination = (str(local[0]), int(local[1])) if isinstance(local, tuple) else ("0.0.0.0", 0)
        return encode_proxy_header(route.service.proxy_protocol.version, source, destination)
