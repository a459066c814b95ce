"""The bound HTTP entrypoints of a gateway: bind, replace on reload, drain.

One `Listener` per HTTP entrypoint wraps the `HttpServer` bound for that entrypoint's config
(its fingerprint). A reload keeps the listener of an unchanged entrypoint, binds new ones for
added and changed entrypoints, and retires the others: they stop accepting, their open
connections are served to the end (draining), then they go. Listeners dispatch by entrypoint
*name* through the gateway, so a connection accepted by an old listener routes on whatever
generation is current when each of its requests arrives.

A changed entrypoint usually keeps its address, and the new socket cannot bind while the old
one listens: the old one stops accepting first, and binding retries briefly while the old
socket closes (without SO_REUSEPORT there is no overlap, so connection attempts in that short
window are refused). If the new socket still cannot bind, the old entrypoints are bound again
and the reload fails.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc

from ..compiler.ir import IRGraph
from ..compiler.schema import EntrypointConfig
from .api import Handler
from .netio import SocketStream, Spawn, StreamFactory

__all__ = ["EntrypointSet", "Listener", "http_entrypoints"]

_log = logging.getLogger("a3s_gateway")


def http_entrypoints(ir: IRGraph) -> dict[str, tuple[str, EntrypointConfig]]:
    """name -> (fingerprint, config) of the HTTP entrypoints (TCP/UDP are a separate runtime)."""
    out: dict[str, tuple[str, EntrypointConfig]] = {}
    for node in ir.by_kind("entrypoint"):
        config = node.config
        if isinstance(config, EntrypointConfig) and config.protocol == "http":
            out[node.name] = (node.fingerprint, config)
    return out


@dataclass(eq=False)
class Listener:
    """One entrypoint's server, as bound for a given entrypoint fingerprint."""

    name: str
    fingerprint: str
    config: EntrypointConfig
    server: Any
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    bound: Any = None
    # Set when serve() has returned: accepting stopped and every connection ended.
    done: anyio.Event = field(default_factory=anyio.Event)

    async def serve(self, *, task_status: anyio.abc.TaskStatus[Any]) -> None:
        try:
            with self.scope:
                await self.server.serve(task_status=task_status)
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

    async def close(self, timeout: float) -> None:
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
        return f"{self.name} on {'https' if self.config.tls else 'http'}://{host}:{port}"


class EntrypointSet:
    """The listeners of the current configuration, by entrypoint name."""

    def __init__(
        self,
        dispatcher: Callable[[str], Handler],
        *,
        reuse_port: bool = False,
        stream_factory: StreamFactory = SocketStream,
    ) -> None:
        self._dispatcher = dispatcher
        self._reuse_port = reuse_port
        # Set by the launcher for the running loop (gateway.py): the socket stream type and
        # how connection tasks are started (None: in the listener's task group).
        self.stream_factory = stream_factory
        self.spawn: Spawn | None = None
        self.listeners: dict[str, Listener] = {}

    def plan(self, ir: IRGraph) -> tuple[set[str], set[str]]:
        """(names to bind: added or changed, names removed) for moving to `ir`."""
        wanted = http_entrypoints(ir)
        bind = {
            n
            for n, (fp, _) in wanted.items()
            if n not in self.listeners or self.listeners[n].fingerprint != fp
        }
        return bind, self.listeners.keys() - wanted.keys()

    async def open(
        self, tg: anyio.abc.TaskGroup, ir: IRGraph, names: Iterable[str], *, retry: float = 0.0
    ) -> None:
        """Bind the listeners of `names`; on failure close those already bound and raise.

        `retry`: seconds to keep trying an address still in use (a socket being closed).
        """
        opened: list[Listener] = []
        entrypoints = http_entrypoints(ir)
        try:
            for name in sorted(names):
                fingerprint, config = entrypoints[name]
                listener = Listener(name, fingerprint, config, self._new_server(name, config))
                await self._bind(tg, listener, retry)
                opened.append(listener)
                self.listeners[name] = listener
        except BaseException:
            for listener in opened:
                self.listeners.pop(listener.name, None)
                listener.scope.cancel()
            raise

    async def _bind(self, tg: anyio.abc.TaskGroup, listener: Listener, retry: float) -> None:
        deadline = anyio.current_time() + retry
        while True:
            try:
                listener.bound = await tg.start(listener.serve)
                return
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or anyio.current_time() > deadline:
                    raise
            await anyio.sleep(0.01)
            listener.server = self._new_server(listener.name, listener.config)
            listener.scope, listener.done = anyio.CancelScope(), anyio.Event()

    def _new_server(self, name: str, config: EntrypointConfig) -> Any:
        from .listener import HttpServer

        ssl_context = None
        if config.tls is not None:
            from .tls import server_context

            ssl_context = server_context(config.tls)
        return HttpServer(
            config,
            self._dispatcher(name),
            ssl_context=ssl_context,
            reuse_port=self._reuse_port,
            stream_factory=self.stream_factory,
            spawn=self.spawn,
        )

    async def replace(
        self, tg: anyio.abc.TaskGroup, new: IRGraph, old: IRGraph, spawn_close: Callable[[Listener], None]
    ) -> list[Listener]:
        """Bind what `new` adds or changes; return the listeners it retires (not yet closed).

        An old socket whose entrypoint changed, or that was removed while a new listener takes
        its address, stops accepting before the new one binds. On failure the old entrypoints
        are bound again (their open connections drain on the old sockets) and the error raised.
        """
        bind, removed = self.plan(new)
        taken = {http_entrypoints(new)[n][1].address for n in bind}
        first = [
            n
            for n in sorted(self.listeners)
            if n in bind or (n in removed and self.listeners[n].config.address in taken)
        ]
        closing = [self.listeners.pop(n) for n in first]
        for listener in closing:
            listener.server.stop_accepting()
        try:
            await self.open(tg, new, bind, retry=2.0)
        except BaseException:
            for listener in closing:
                spawn_close(listener)
            try:
                await self.open(tg, old, first, retry=2.0)
            except Exception:
                _log.exception("entrypoints %s could not be restored", ", ".join(first))
            raise
        return closing + [self.listeners.pop(n) for n in sorted(removed) if n in self.listeners]

    def stop_accepting(self) -> None:
        for listener in self.listeners.values():
            listener.server.stop_accepting()

    async def drain(
        self, timeout: float, also: Callable[[], Coroutine[Any, Any, None]] | None = None
    ) -> None:
        """Drain every listener (and wait for `also`), up to `timeout` plus the cut."""
        with anyio.move_on_after(timeout + 1):
            async with anyio.create_task_group() as tg:
                for listener in self.listeners.values():
                    tg.start_soon(listener.drain, timeout)
                if also is not None:
                    tg.start_soon(also)

    def cancel(self) -> None:
        for listener in self.listeners.values():
            listener.scope.cancel()
        self.listeners.clear()
