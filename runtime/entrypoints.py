"""The bound entrypoints of a gateway (HTTP, TCP and UDP): bind, hand over on reload, drain.

One `Listener` per entrypoint wraps the server bound to that entrypoint's address: an
`HttpServer` (listener.py), a `TcpServer` (l4/server.py) or a `UdpServer` (l4/udp_server.py),
which have the same shape. A UDP socket and a TCP one may share an address (DNS on port 53):
listeners are matched by transport and address. A socket
whose entrypoint changes protocol is not kept: the new one needs the address, so such a reload
fails (address in use) and changes nothing; give it a new address, or restart. A
listening socket depends on nothing but its address, so a reload keeps every socket whose
address a new entrypoint still has, with its open connections: a changed entrypoint (new
timeouts, limits, TLS certificates) keeps its listener, which takes the new settings for the
connections it accepts from then on (open connections keep theirs, so no stream is cut), and an
entrypoint renamed on the same address takes the old name's listener over. Only an address no
listener has gets a new socket, and only a socket whose address no entrypoint has any more is
retired: it stops accepting, and its open connections are served to the end (draining).

A reload is two steps. `prepare(ir)` builds what can fail: the TLS contexts of changed
entrypoints, and the new sockets, bound but not accepting (a port in use fails here, when
nothing has changed). `commit(change)` cannot fail: it renames and reconfigures the kept
listeners, opens the new ones, and hands back those to retire. `abort(change)` closes the new
sockets (they are closed when it returns) and changes nothing else. Listeners dispatch through the gateway by their *current*
name, so every connection of a socket routes on the entrypoint that now owns its address, on
whatever generation is current when each of its requests arrives.
"""

from __future__ import annotations

import errno
import math
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from ..compiler.ir import IRGraph
from ..compiler.schema import EntrypointConfig
from ..compiler.tls_options import EntrypointOptions, tls_options_plan
from .api import Handler
from .netio import SocketStream, Spawn, StreamFactory, WatchReadable

if TYPE_CHECKING:
    from .acme.table import CertificateTable

__all__ = ["EntrypointChange", "EntrypointSet", "Listener", "served_entrypoints"]

# How long a bind waits for a retired socket on its port to close.
_CLOSING_WAIT = 2.0


def served_entrypoints(ir: IRGraph) -> dict[str, tuple[str, EntrypointConfig]]:
    """name -> (fingerprint, config) of the HTTP, TCP and UDP entrypoints."""
    out: dict[str, tuple[str, EntrypointConfig]] = {}
    for node in ir.by_kind("entrypoint"):
        config = node.config
        if isinstance(config, EntrypointConfig):
            out[node.name] = (node.fingerprint, config)
    return out


@dataclass(eq=False)
class Listener:
    """One entrypoint's server: its socket, and the entrypoint (name, config) that owns it now."""

    name: str
    fingerprint: str
    config: EntrypointConfig
    server: Any = None
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    bound: Any = None
    # Set when serve() has returned: accepting stopped and every connection ended.
    done: anyio.Event = field(default_factory=anyio.Event)
    # Set to start accepting (a listener bound by a reload accepts once the reload commits).
    gate: anyio.Event | None = None

    async def serve(self, *, task_status: anyio.abc.TaskStatus[Any]) -> None:
        try:
            with self.scope:
                await self.server.serve(gate=self.gate, task_status=task_status)
        finally:
            self.done.set()

    async def drain(self, timeout: float) -> None:
        """Stop accepting and drain: return once the server's drain() or serve() has returned.

        Either one ending means every connection has ended; waiting for both could miss a
        wake-up, since both wait on the server's one "empty" event.
        """
        self.server.stop_accepting()
        async with anyio.create_task_group() as tg:

            async def drain_server() -> None:
                await self.server.drain(timeout)
                tg.cancel_scope.cancel()

            tg.start_soon(drain_server)
            await self.done.wait()
            tg.cancel_scope.cancel()

    async def close(self, timeout: float = math.inf) -> None:
        """Drain (the server cuts what is left at `timeout`), then make sure the task ends."""
        try:
            with anyio.move_on_after(timeout + 1):
                await self.drain(timeout)
        finally:
            self.scope.cancel()

    @property
    def address(self) -> tuple[str, int]:
        """Where it is bound (the real port when configured as 0)."""
        bound = self.bound
        if isinstance(bound, tuple) and len(bound) >= 2 and isinstance(bound[1], int):
            return str(bound[0]), bound[1]
        return self.config.host, self.config.port

    def statistics(self) -> dict[str, Any]:
        stats = self.server.statistics()
        fields = getattr(stats, "__slots__", None) or vars(stats)
        host, port = self.address
        return {"address": f"{host}:{port}", **{k: getattr(stats, k) for k in fields}}

    def describe(self) -> str:
        host, port = self.address
        protocol = self.config.protocol
        scheme = protocol if protocol != "http" else "https" if self.config.tls else "http"
        return f"{self.name} on {scheme}://{host}:{port}"


@dataclass(eq=False)
class _Kept:
    """A listener that an entrypoint of the new configuration keeps (same address)."""

    listener: Listener
    name: str
    fingerprint: str
    config: EntrypointConfig
    ssl_context: ssl.SSLContext | None


@dataclass(eq=False)
class EntrypointChange:
    """The listeners of a configuration, prepared (`EntrypointSet.prepare`) and not yet visible."""

    kept: list[_Kept] = field(default_factory=list)
    opened: list[Listener] = field(default_factory=list)  # bound, not yet accepting
    retired: list[Listener] = field(default_factory=list)  # no entrypoint has their address


class EntrypointSet:
    """The listeners of the current configuration, by entrypoint name."""

    def __init__(
        self,
        dispatcher: Callable[[Listener], Handler],
        *,
        tcp_dispatcher: Callable[[Listener], Callable[[], tuple[Any, str]]] | None = None,
        direct_source: Callable[[Listener], Any] | None = None,
        reuse_port: bool = False,
        stream_factory: StreamFactory = SocketStream,
    ) -> None:
        # Makes the handler of a listener's connections; it routes by the listener's name.
        self._dispatcher = dispatcher
        # For a TCP listener: returns the current generation and the listener's current name.
        self._tcp_dispatcher = tcp_dispatcher
        # For an HTTP listener: what the callback path reads per request (callback_path.py).
        self._direct_source = direct_source
        self._reuse_port = reuse_port
        # Set by the launcher for the running loop (gateway.py): the socket stream type and
        # how connection tasks are started (None: in the listener's task group).
        self.stream_factory = stream_factory
        self.spawn: Spawn | None = None
        self.watch: WatchReadable | None = None  # how UDP sockets wait to be readable (None: a task)
        self.listeners: dict[str, Listener] = {}
        # Listeners a reload retired that still serve open connections.
        self.retiring: set[Listener] = set()

    async def prepare(
        self, tg: anyio.abc.TaskGroup, ir: IRGraph, acme: CertificateTable | None = None
    ) -> EntrypointChange:
        """Everything moving to `ir` needs that can fail, with no visible effect. `acme`: the
        gateway's ACME certificates, when `ir` has certificate resolvers.

        On failure the sockets bound so far are closed and the error raised.
        """
        change = EntrypointChange()
        by_address = {_socket_key(listener.config): listener for listener in self.listeners.values()}
        wanted = served_entrypoints(ir)
        plans = tls_options_plan(ir)
        try:
            for name in sorted(wanted):
                fingerprint, config = wanted[name]
                listener = by_address.pop(_socket_key(config), None)
                if listener is not None and listener.config.protocol != config.protocol:
                    by_address[_socket_key(config)] = listener  # retired: its address is needed anew
                    listener = None
                if listener is None:
                    opened = Listener(name, fingerprint, config, gate=anyio.Event())
                    await self._bind(tg, opened, acme, plans.get(name))
                    change.opened.append(opened)
                    continue
                ssl_context = listener.server.ssl_context
                # Certificates are read again, as at start; and a context is made anew when ACME
                # certificates start or stop being served (the resolvers changed, not the entrypoint),
                # or when the routers' TLS options on this entrypoint changed.
                if (
                    listener.fingerprint != fingerprint
                    or _serves_acme(ssl_context) != _acme_for(config, acme)
                    # tls_select.OPTIONS_ATTRIBUTE (not imported: it pulls in the TCP machinery)
                    or getattr(ssl_context, "a3s_tls_options", None) != plans.get(name)
                ):
                    ssl_context = _ssl_context(config, acme, plans.get(name))
                change.kept.append(_Kept(listener, name, fingerprint, config, ssl_context))
        except BaseException:
            await self.abort(change)
            raise
        change.retired = sorted(by_address.values(), key=lambda listener: listener.name)
        return change

    def commit(self, change: EntrypointChange) -> list[Listener]:
        """Make `change` the listeners (this cannot fail); return those to retire."""
        listeners: dict[str, Listener] = {}
        for kept in change.kept:
            listener = kept.listener
            # A new TLS context (the routers' TLS options changed) comes with an unchanged entrypoint.
            if (listener.name, listener.fingerprint) != (
                kept.name,
                kept.fingerprint,
            ) or kept.ssl_context is not listener.server.ssl_context:
                listener.server.reconfigure(kept.config, kept.ssl_context)
                listener.name, listener.fingerprint, listener.config = (
                    kept.name,
                    kept.fingerprint,
                    kept.config,
                )
            listeners[kept.name] = listener
        for listener in change.opened:
            listeners[listener.name] = listener
            assert listener.gate is not None
            listener.gate.set()
        self.listeners = dict(sorted(listeners.items()))
        for listener in change.retired:
            listener.server.stop_accepting()  # now, so the address is free for the next reload
        self.retiring.update(change.retired)
        return change.retired

    async def abort(self, change: EntrypointChange) -> None:
        """Close the sockets `prepare` bound, and return once they are closed (the port is free
        again when the failed reload returns); nothing else was changed."""
        opened, change.opened = change.opened, []
        with anyio.CancelScope(shield=True):  # the reload may be failing because it is cancelled
            for listener in opened:
                listener.scope.cancel()
                await listener.done.wait()

    async def retire(self, listener: Listener) -> None:
        """Stop accepting and serve the open connections to their end (shutdown cuts them)."""
        try:
            await listener.close()
        finally:
            self.retiring.discard(listener)

    async def _bind(
        self,
        tg: anyio.abc.TaskGroup,
        listener: Listener,
        acme: CertificateTable | None,
        options: EntrypointOptions | None,
    ) -> None:
        for attempt in (0, 1):
            listener.server = self._new_server(listener, listener.config, acme, options)
            listener.scope, listener.done = anyio.CancelScope(), anyio.Event()
            try:
                listener.bound = await tg.start(listener.serve)
                return
            except OSError as exc:
                # A socket an earlier reload retired may still be closing: wait for it, once.
                port = listener.config.port
                closing = [old.server for old in self.retiring if old.config.port == port]
                if attempt or exc.errno != errno.EADDRINUSE or not closing:
                    raise
                with anyio.move_on_after(_CLOSING_WAIT):
                    for server in closing:
                        await server.wait_unbound()

    def _new_server(
        self,
        listener: Listener,
        config: EntrypointConfig,
        acme: CertificateTable | None,
        options: EntrypointOptions | None,
    ) -> Any:
        if config.protocol == "udp":
            from .l4 import UdpServer

            assert self._tcp_dispatcher is not None, "UDP entrypoints need a tcp_dispatcher"
            return UdpServer(
                config, self._tcp_dispatcher(listener), reuse_port=self._reuse_port, watch=self.watch
            )
        if config.protocol == "tcp":
            from .l4 import TcpServer

            assert self._tcp_dispatcher is not None, "TCP entrypoints need a tcp_dispatcher"
            return TcpServer(
                config,
                self._tcp_dispatcher(listener),
                ssl_context=_ssl_context(config, acme, options),
                reuse_port=self._reuse_port,
                stream_factory=self.stream_factory,
                spawn=self.spawn,
            )
        from .listener import HttpServer

        return HttpServer(
            config,
            self._dispatcher(listener),
            ssl_context=_ssl_context(config, acme, options),
            reuse_port=self._reuse_port,
            stream_factory=self.stream_factory,
            spawn=self.spawn,
            direct=self._direct_source(listener) if self._direct_source is not None else None,
        )

    def stop_accepting(self) -> None:
        for listener in [*self.listeners.values(), *self.retiring]:
            listener.server.stop_accepting()

    async def drain(
        self, timeout: float, also: Callable[[], Coroutine[Any, Any, None]] | None = None
    ) -> None:
        """Drain every listener, retiring ones included (and wait for `also`), up to `timeout`
        plus the cut."""
        with anyio.move_on_after(timeout + 1):
            async with anyio.create_task_group() as tg:
                for listener in [*self.listeners.values(), *self.retiring]:
                    tg.start_soon(listener.drain, timeout)
                if also is not None:
                    tg.start_soon(also)

    def cancel(self) -> None:
        for listener in [*self.listeners.values(), *self.retiring]:
            listener.scope.cancel()
        self.listeners.clear()
        self.retiring.clear()


def _socket_key(config: EntrypointConfig) -> tuple[str, str]:
    """A socket is kept by transport and address: HTTP and TCP entrypoints share TCP sockets."""
    return ("udp" if config.protocol == "udp" else "tcp", config.address)


def _serves_acme(ctx: ssl.SSLContext | None) -> bool:
    return ctx is not None and getattr(ctx, "a3s_acme", False)


def _acme_for(config: EntrypointConfig, acme: CertificateTable | None) -> bool:
    """Whether this entrypoint's handshakes look up ACME certificates: every TLS entrypoint does
    while the configuration has certificate resolvers (HTTPS ones, and TCP ones whose routers
    terminate TLS: runtime/l4/connection.py wraps with this context)."""
    return acme is not None and config.tls is not None and config.protocol != "udp"


def _ssl_context(
    config: EntrypointConfig, acme: CertificateTable | None, options: EntrypointOptions | None = None
) -> ssl.SSLContext | None:
    if config.tls is None:
        return None
    from .tls_select import entrypoint_context

    table = acme if _acme_for(config, acme) else None
    # A TCP entrypoint offers no ALPN protocol of its own (`tls { alpn }` sets some).
    alpn = () if config.protocol == "tcp" else ("h2", "http/1.1")
    ctx = entrypoint_context(config.tls, options, alpn=alpn, acme=table)
    if table is not None:
        ctx.a3s_acme = True  # type: ignore[attr-defined]
    return ctx
