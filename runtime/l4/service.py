"""TCP services: pick a backend with the service's balancer and connect to it.

A service whose servers are all given by `address` (host:port) is a TCP service. It keeps the
HTTP services' long-lived `ServiceState` (runtime/service.py): the `Backend` objects by address,
the balancer's state and the health tables survive a reload that keeps them, and a build only
registers its changes with the reload's commit. The existing strategies (stdlib/balancers) pick
among the available backends (healthy, not draining); `in_flight` counts open connections, so
`least-connections` balances connections. Active health checks connect (stdlib/health/tcp.py);
passive health counts connect failures and backends that reset a relayed connection.

`connect()` tries another backend when one refuses or times out (nothing was sent to it yet),
and when none is available, the first service of the failover chain that has one takes the
connection, as for HTTP services (stdlib/services/failover.py).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass

import anyio
import anyio.abc

from ...compiler.ir import Node
from ...compiler.schema import FtpPassive, LoadBalancerConfig, SendProxyProtocol, ServiceConfig
from ...stdlib.base import BuildContext
from ...stdlib.health.tcp import probe_tcp
from ...stdlib.services import failover
from ..api import Backend
from ..netio import connect_tcp
from ..service import Commit, ServiceState, apply_now, make_balancer
from ..service_health import ServiceHealth

__all__ = ["NoBackend", "TcpService", "Upstream"]


class NoBackend(Exception):
    """No backend of the service (nor of its failover chain) accepted the connection."""


@dataclass(eq=False, slots=True)
class Upstream:
    """A connected backend: count it out with `release()` when the relay ends."""

    backend: Backend
    stream: anyio.abc.SocketStream
    service: TcpService

    def release(self, *, failed: bool = False) -> None:
        self.backend.in_flight -= 1
        if failed:
            self.service.health.report_failure(self.backend, self.service.clock.now())


class TcpService:
    def __init__(
        self,
        node: Node,
        state: ServiceState,
        ctx: BuildContext,
        *,
        commit: Commit = apply_now,
        task_group: anyio.abc.TaskGroup | None = None,
        services: Mapping[str, TcpService] | None = None,
    ) -> None:
        config = node.config
        assert isinstance(config, ServiceConfig)
        lb = config.load_balancer or LoadBalancerConfig()
        self.name = node.name
        self.clock = ctx.clock
        self.timeouts = config.timeouts
        self.proxy_protocol: SendProxyProtocol | None = config.proxy_protocol
        self.ftp: FtpPassive | None = config.ftp  # passive mode rewritten here (ftp.py)
        self.backends = state.sync([(s.address, s.weight) for s in lb.servers if s.address], commit)
        self.balancer = make_balancer(lb.strategy, state, ctx, lb.strategy_options, commit=commit)
        if state.health is None:
            state.health = ServiceHealth(node.name, ctx.clock, ctx.publish, prober=probe_tcp)
        self.health = state.health
        backends: Callable[[], tuple[Backend, ...]] = lambda: tuple(state.backends.values())  # noqa: E731
        commit(self.health.prepare(lb.health_check, lb.passive_health, backends, task_group))
        self.failover = config.failover.service if config.failover else None
        self.services: Mapping[str, TcpService] = services if services is not None else {}

    def has_available(self) -> bool:
        self.health.refresh(self.clock.now())
        return any(b.available for b in self.backends)

    async def connect(self) -> Upstream:
        """A connection to an available backend (of this service or its failover chain)."""
        return await self.target()._connect_here()

    def target(self) -> TcpService:
        """This service, or the first of its failover chain with an available backend."""
        if self.failover is not None and not self.has_available():
            name = failover.resolve_among(self, self.services)
            return self.services.get(name, self)
        return self

    def pick(self, tried: Container[str] = ()) -> Backend | None:
        """The balancer's choice among the backends not in `tried` (UDP sessions use it too)."""
        self.health.refresh(self.clock.now())
        candidates = [b for b in self.backends if b.key not in tried]
        return self.balancer.pick(candidates, None)  # type: ignore[arg-type]

    async def _connect_here(self) -> Upstream:
        tried: set[str] = set()
        while True:
            backend = self.pick(tried)
            if backend is None:
                raise NoBackend(f"service {self.name!r} has no available backend")
            backend.in_flight += 1
            try:
                with anyio.fail_after(self.timeouts.connect):
                    host, _, port = backend.url.rpartition(":")
                    stream = await connect_tcp(host.strip("[]"), int(port))
            except (OSError, TimeoutError):
                backend.in_flight -= 1
                self.health.report_failure(backend, self.clock.now())
                tried.add(backend.key)
                continue
            except BaseException:
                backend.in_flight -= 1
                raise
            return Upstream(backend, stream, self)
