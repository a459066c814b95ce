"""HTTP services: pick a backend, hand the request to the proxy.

A service node (`service:<name>`, config `ServiceConfig`) becomes an `HttpService`, a `Handler`.
It is rebuilt on every reload, like every handler; what must survive a reload lives in its
`ServiceState`, which the graph obtains from the state store for the node's whole lifetime
(whatever its fingerprint): the `Backend` objects, keyed by URL, so a reload that keeps a server
keeps its health and counters, and the balancer's own state.

Backend selection is one method, `pick`, over the balancer named by `load_balancer.strategy`:
a kind registered as `("balancer", strategy)` in the stdlib registry when there is one, else the
built-in round robin. A balancer kind is built like a middleware, `impl(config, state, ctx)`,
and answers `pick(backends, request) -> Backend | None`, considering only available backends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..compiler.ir import Node
from ..compiler.schema import LoadBalancerConfig, ServiceConfig
from ..stdlib import registry
from ..stdlib.base import BuildContext
from .api import Backend, Request, Response
from .errors import NoHealthyBackend

__all__ = ["Balancer", "Forward", "Front", "HttpService", "RoundRobin", "ServiceState", "make_balancer"]

Forward = Callable[[Request, Backend], Awaitable[Response]]
"""The proxy bound to this service's proxy config and upstream client."""


class Balancer(Protocol):
    def pick(self, backends: Sequence[Backend], request: Request) -> Backend | None: ...


Front = Callable[[Request, Balancer, Forward], Awaitable[Response]]
"""Takes over backend selection for scaled services and revisions (stdlib/scalers/_front.py)."""


@dataclass(slots=True, eq=False)
class ServiceState:
    """What a service keeps across reloads."""

    backends: dict[str, Backend] = field(default_factory=dict)
    # Balancer state per strategy name, so switching strategy and back starts afresh only once.
    balancers: dict[str, Any] = field(default_factory=dict)

    def sync(self, servers: Sequence[tuple[str, int]]) -> tuple[Backend, ...]:
        """The backends for (url, weight) pairs, reusing the live objects of known URLs."""
        # Nothing here may change what the running generation sees: this runs while the new
        # generation is built, before the swap (and the build may still be abandoned). A server
        # the new config dropped is simply absent from the new tuple; requests the old
        # generation already sent to it finish there.
        # (A new weight is set in place: the live counters must stay on one object.)
        current: dict[str, Backend] = {}
        for url, weight in servers:
            backend = self.backends.get(url) or Backend(url=url, weight=weight)
            backend.weight = weight
            current[url] = backend
        self.backends = current
        return tuple(current.values())


class RoundRobin:
    """Each available backend in turn (backends of weight 0 take no traffic)."""

    def __init__(self, state: list[int]) -> None:
        self._counter = state

    @staticmethod
    def new_state() -> list[int]:
        return [0]

    def pick(self, backends: Sequence[Backend], request: Request) -> Backend | None:
        candidates = [b for b in backends if b.available and b.weight > 0]
        if not candidates:
            return None
        index = self._counter[0] % len(candidates)
        self._counter[0] = index + 1
        return candidates[index]


def make_balancer(strategy: str, state: ServiceState, ctx: BuildContext) -> Balancer:
    """The balancer for `strategy`: a registered kind, or the built-in round robin."""
    kind = registry.lookup("balancer", strategy)
    if kind is None:
        counter = state.balancers.setdefault("round-robin", RoundRobin.new_state())
        return RoundRobin(counter)
    config = kind.config()
    if strategy not in state.balancers:
        new_state = getattr(kind.impl, "new_state", None)
        state.balancers[strategy] = new_state(config, ctx) if new_state is not None else None
    balancer: Balancer = kind.impl(config, state.balancers[strategy], ctx)
    return balancer


class HttpService:
    """A service handler: `await service(request)` returns the upstream's response."""

    def __init__(
        self,
        node: Node,
        state: ServiceState,
        ctx: BuildContext,
        *,
        forward: Forward,
        resolve: Callable[[str], str] = lambda url: url,
        front: Front | None = None,
    ) -> None:
        config = node.config
        assert isinstance(config, ServiceConfig)
        self.name = node.name
        lb = config.load_balancer or LoadBalancerConfig()
        self.backends = state.sync([(resolve(s.url), s.weight) for s in lb.servers if s.url])
        self.balancer = make_balancer(lb.strategy, state, ctx)
        self._forward = forward
        self.front = front

    def pick(self, request: Request) -> Backend | None:
        """The backend for `request` among the available ones, or None."""
        return self.balancer.pick(self.backends, request)

    async def __call__(self, request: Request) -> Response:
        if self.front is not None:
            return await self.front(request, self.balancer, self._forward)
        backend = self.pick(request)
        if backend is None:
            raise NoHealthyBackend(f"service {self.name!r} has no available backend")
        return await self._forward(request, backend)
