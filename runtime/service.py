"""HTTP services: pick a backend, hand the request to the proxy.

A service node (`service:<name>`, config `ServiceConfig`) becomes an `HttpService`, a `Handler`.
It is rebuilt on every reload, like every handler; what must survive a reload lives in its
`ServiceState`, which the graph obtains from the state store for the node's whole lifetime
(whatever its fingerprint): the `Backend` objects, keyed by URL, so a reload that keeps a server
keeps its health and counters; the balancer's own state; the health tables and the probe task;
the sticky-session table; the mirror's in-flight count. Building a service never changes that
state: the new backend table, weights, health checks, sticky and mirror settings are prepared
and handed to `commit` (the reload transaction's `on_commit`), which applies them once the
whole reload has succeeded. See docs/services.md and docs/lifecycle.md.

One request through `HttpService.__call__`:

1. Mirror: when the service mirrors and this request is drawn, the request body is teed and a
   copy goes to the shadow service in a task of its own (fire-and-forget, bounded in flight).
2. Failover: when no backend is available, the first service along the failover chain that has
   one takes the request; with none, 503 `no_healthy_backend`.
3. Scaled services and revisions hand selection to their front (stdlib/scalers), which narrows
   the backends (a revision's servers, a replica with a free slot) and then comes back through
   steps 4 and 5 (`serve_on`, `send`): they are counted, health-checked and failed over alike.
4. Pick: the sticky cookie's backend when it is available, else the balancer's choice (and the
   response re-pins). Only available backends (healthy, not draining) are ever picked. A strategy
   that picks by the request's body (`conversation-affinity`, `prefix-cache`) says so with
   `reads_body`, and its `inspect(request)` is awaited once first (it reads the body and puts it
   back); other strategies cost nothing here.
5. Send: the backend's in-flight count goes up until the response body ends, fails or is closed
   (the client went away); the time to the response head goes into the backend's latency window
   and peak-EWMA (the admin API shows them; the `ewma` strategy ranks by the EWMA); the outcome
   feeds passive health. A connect error means nothing was sent, so the request is tried on another
   backend: a dead backend costs a client nothing even before health checks notice.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio.abc

from ..compiler.ir import Node
from ..compiler.schema import LoadBalancerConfig, MirrorConfig, ServiceConfig, StickyConfig
from ..stdlib import registry
from ..stdlib.base import BuildContext
from ..stdlib.services import failover
from ..stdlib.services.mirror import MirrorPolicy, ShadowAbandoned, abandon_shadow, tee
from ..stdlib.services.sticky import StickySessions
from .api import DEFAULT_LATENCY_DECAY, Backend, BodyStream, Clock, Request, Response, empty_body
from .body_end import on_body_end
from .errors import CONNECT_FAILURES, BadGateway, CircuitOpen, GatewayTimeout, NoHealthyBackend
from .observe.meters import MIRRORED
from .service_health import ServiceHealth

__all__ = [
    "Balancer",
    "Commit",
    "Forward",
    "Front",
    "HttpService",
    "RoundRobin",
    "ServiceState",
    "apply_now",
    "make_balancer",
]

_log = logging.getLogger("a3s_gateway.service")

Forward = Callable[[Request, Backend], Awaitable[Response]]
"""The proxy bound to this service's proxy config and upstream client."""

Commit = Callable[[Callable[[], object]], None]
"""Where a build registers a change to shared state, applied when the reload commits."""


def apply_now(apply: Callable[[], object]) -> None:
    """The `Commit` of a service built outside a reload (tests, tools): apply at once."""
    apply()


# Failures that passive health holds against a backend (ClientClosed is the client's doing).
_BACKEND_FAILURES = (BadGateway, GatewayTimeout)
_NONE_TRIED: frozenset[str] = frozenset()


class Balancer(Protocol):
    def pick(self, backends: Sequence[Backend], request: Request) -> Backend | None: ...


Inspect = Callable[[Request], Awaitable[None]]
"""A body-reading strategy's step before it picks (`BalancerKind.inspect`)."""


def _inspectors(*balancers: Balancer) -> tuple[Inspect, ...]:
    """The `inspect` of each strategy that reads the request body (usually none)."""
    found: list[Inspect] = []
    for balancer in balancers:
        if getattr(balancer, "reads_body", False):
            found.append(balancer.inspect)  # type: ignore[attr-defined]
    return tuple(found)


class Front(Protocol):
    """Takes over backend selection for scaled services and revisions (stdlib/scalers/_front.py)."""

    def __call__(self, request: Request, path: HttpService) -> Awaitable[Response]: ...

    def backends(self) -> tuple[Backend, ...]:
        """Backends beyond the service's own servers that its health checks judge."""
        ...

    def has_available(self) -> bool: ...


@dataclass(slots=True, eq=False)
class ServiceState:
    """What a service keeps across reloads."""

    backends: dict[str, Backend] = field(default_factory=dict)
    # Balancer state per strategy name, so switching strategy and back starts afresh only once.
    balancers: dict[str, Any] = field(default_factory=dict)
    health: ServiceHealth | None = None
    sticky: StickySessions | None = None
    mirror: MirrorPolicy | None = None

    def sync(self, servers: Sequence[tuple[str, int]], commit: Commit = apply_now) -> tuple[Backend, ...]:
        """The backends for (url, weight) pairs, reusing the live objects of known URLs."""
        # Nothing here may change what the running generation sees: this runs while the new
        # generation is built, before the swap (and the build may still be abandoned). A server
        # the new config dropped is simply absent from the new tuple; requests the old
        # generation already sent to it finish there, and no new request can pick it: that is
        # draining. A new weight is set in place (the live counters must stay on one object),
        # so it waits for the commit, as does the new table.
        current: dict[str, Backend] = {}
        for url, weight in servers:
            current[url] = self.backends.get(url) or Backend(url=url, weight=weight)

        def apply() -> None:
            for url, weight in servers:
                current[url].weight = weight
            # The health records of dropped servers are forgotten by ServiceHealth's commit.
            self.backends = current

        commit(apply)
        return tuple(current.values())

    def configure_sticky(
        self, config: StickyConfig | None, service: str, commit: Commit = apply_now
    ) -> StickySessions | None:
        sticky = self.sticky
        if config is None:
            sticky = None
        elif sticky is None or sticky.config != config:
            sticky = StickySessions(config, service)
        commit(functools.partial(setattr, self, "sticky", sticky))
        return sticky

    def configure_mirror(
        self, config: MirrorConfig | None, commit: Commit = apply_now
    ) -> MirrorPolicy | None:
        policy = self.mirror
        if config is None:
            policy = None
        elif policy is None:
            policy = MirrorPolicy(config)
        elif policy.config != config:
            # The same policy, so the in-flight count of shadows still running carries over.
            commit(functools.partial(setattr, policy, "config", config))
        commit(functools.partial(setattr, self, "mirror", policy))
        return policy

    async def aclose(self) -> None:
        """The service was removed: stop its probes."""
        if self.health is not None:
            await self.health.aclose()


async def close_service_state(state: Any) -> None:
    await state.aclose()


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


def _latency_decay(balancer: Balancer) -> float:
    decay: float = getattr(balancer, "latency_decay", DEFAULT_LATENCY_DECAY)
    return decay


def make_balancer(
    strategy: str,
    state: ServiceState,
    ctx: BuildContext,
    options: Mapping[str, Any] | None = None,
    *,
    revision: str = "",
    commit: Commit = apply_now,
) -> Balancer:
    """The balancer for `strategy`: a registered kind, or the built-in round robin.

    `revision` names a revision with a strategy of its own: its cursor or weights are its own.
    A strategy new to the service gets fresh state, kept in `state` from the commit on.
    """
    key = f"{strategy}@{revision}" if revision else strategy
    kind = registry.lookup("balancer", strategy)
    config = None if kind is None else kind.config.model_validate(dict(options or {}))
    if key in state.balancers:
        balancer_state = state.balancers[key]
    elif kind is None:
        balancer_state = RoundRobin.new_state()
    else:
        # Options were validated against this model at compile time (`load_balancer { ewma { ... } }`).
        new_state = getattr(kind.impl, "new_state", None)
        balancer_state = new_state(config, ctx) if new_state is not None else None
    if key not in state.balancers:
        commit(functools.partial(state.balancers.setdefault, key, balancer_state))
    if kind is None:
        return RoundRobin(balancer_state)
    balancer: Balancer = kind.impl(config, balancer_state, ctx)
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
        task_group: anyio.abc.TaskGroup | None = None,
        services: Mapping[str, HttpService] | None = None,
        commit: Commit = apply_now,
        hold: Callable[[], Callable[[], None]] | None = None,
    ) -> None:
        """`commit` applies the changes to the shared `state` (see ServiceState.sync); `hold`
        counts a mirror shadow in its generation's in-flight requests until it calls back."""
        config = node.config
        assert isinstance(config, ServiceConfig)
        self.name = node.name
        self.clock: Clock = ctx.clock
        lb = config.load_balancer or LoadBalancerConfig()
        self.state = state
        self.backends = state.sync([(resolve(s.url), s.weight) for s in lb.servers if s.url], commit)
        self.balancer = make_balancer(lb.strategy, state, ctx, lb.strategy_options, commit=commit)
        # Revisions that ask for a strategy of their own (`revisions = [{ strategy = ... }]`).
        self.revision_balancers: dict[str, Balancer] = {
            r.name: make_balancer(r.strategy, state, ctx, revision=r.name, commit=commit)
            for r in config.revisions
            if r.strategy is not None and r.strategy != lb.strategy
        }
        self._inspectors = _inspectors(self.balancer, *self.revision_balancers.values())
        # The peak-EWMA time constant per revision (an `ewma` strategy chooses its own).
        self._decay = _latency_decay(self.balancer)
        self._revision_decay = {
            name: decay
            for name, balancer in self.revision_balancers.items()
            if (decay := _latency_decay(balancer)) != self._decay
        }
        self._forward = forward
        self.front = front
        # Other services of the same generation, by name (failover and mirror targets).
        self.services: Mapping[str, HttpService] = services if services is not None else {}
        self.failover = config.failover.service if config.failover else None
        self._task_group = task_group
        self._hold = hold
        if state.health is None:  # a new service: its state is not live yet
            state.health = ServiceHealth(node.name, ctx.clock, ctx.publish)
        self.health = state.health
        commit(self.health.prepare(lb.active_check(), lb.passive_health, self._judged_backends, task_group))
        self.sticky = state.configure_sticky(lb.sticky, node.name, commit)
        self.mirror = state.configure_mirror(config.mirror, commit) if task_group is not None else None
        # The usual service: no mirror, failover, body-reading strategy nor front, so that
        # `__call__` goes straight to `serve_on` (what `_route` and `serve_here` come to for it).
        self._direct = (
            self.mirror is None and self.failover is None and not self._inspectors and front is None
        )

    # ----------------------------------------------------------------------- the request path

    def __call__(self, request: Request) -> Awaitable[Response]:
        # Plain functions returning the coroutine that does the work (here and in _route): a
        # pass-through layer costs no coroutine frame on the request path.
        if self._direct:
            if self.health.evicted:
                self.health.refresh(self.clock.now())
            return self.serve_on(request, self.backends)
        if self.mirror is None:
            return self._route(request)
        return self._mirrored(request)

    async def _mirrored(self, request: Request) -> Response:
        teed = self._maybe_mirror(request)
        if teed is None:
            return await self._route(request)
        try:
            response = await self._route(request)
        except BaseException:
            abandon_shadow(teed)
            raise
        # An early answer leaves the request body unread: the shadow must not wait for it.
        response.body = on_body_end(response.body, lambda _: abandon_shadow(teed))
        return response

    def _route(self, request: Request) -> Awaitable[Response]:
        if self.health.evicted:  # refresh has nothing to do otherwise: no clock reading
            self.health.refresh(self.clock.now())
        if self.failover is not None and not self.has_available():
            target = failover.resolve_among(self, self.services)
            if target != self.name:
                return self.services[target].serve_here(request)
        return self.serve_here(request)

    def _judged_backends(self) -> tuple[Backend, ...]:
        """Every backend this service's health checks judge: its servers and its front's."""
        own = tuple(self.state.backends.values())
        return own + self.front.backends() if self.front is not None else own

    def has_available(self) -> bool:
        """Whether this service can take a request now (a scaled service always can: it buffers)."""
        if self.health.evicted:
            self.health.refresh(self.clock.now())
        if self.front is not None:
            return self.front.has_available()
        return any(b.available for b in self.backends)

    def balancer_for(self, revision: str) -> Balancer:
        """The balancer that picks among `revision`'s backends: its own, or the service's."""
        return self.revision_balancers.get(revision, self.balancer)

    def serve_here(self, request: Request) -> Awaitable[Response]:
        """Serve `request` on this service's own backends (no failover, no mirror)."""
        if self._inspectors:
            return self._inspected(request)
        if self.front is not None:
            return self.front(request, self)
        return self.serve_on(request, self.backends)

    async def _inspected(self, request: Request) -> Response:
        for inspect in self._inspectors:
            await inspect(request)
        if self.front is not None:
            return await self.front(request, self)
        return await self.serve_on(request, self.backends)

    async def serve_on(
        self, request: Request, backends: Sequence[Backend], balancer: Balancer | None = None
    ) -> Response:
        """Pick one of `backends` (by `balancer`, default the service's) and send; a connect
        failure moves the request to another."""
        pick = (balancer or self.balancer).pick
        sticky = self.sticky
        tried: frozenset[str] | set[str] = _NONE_TRIED  # a set only once a backend failed
        # A per-backend circuit breaker names the backends whose circuit is open.
        avoid: frozenset[str] | set[str] = request.state.get("avoid_backends") or _NONE_TRIED
        while True:
            excluded = tried | avoid if avoid else tried
            candidates = [b for b in backends if b.key not in excluded] if excluded else backends
            if self.health.busy:  # agent_health: busy backends only when no ready one is left
                candidates = self.health.prefer_ready(candidates)
            if sticky is None:  # _choose without the pair it returns
                backend, set_cookie = pick(candidates, request), None
            else:
                backend, set_cookie = self._choose(request, candidates, pick)
            if backend is None:
                if avoid and any(b.available and b.key in avoid for b in backends):
                    raise CircuitOpen(f"service {self.name!r}: every available backend's circuit is open")
                raise NoHealthyBackend(f"service {self.name!r} has no available backend")
            # Tells middlewares after the response (per-backend breakers, logs) who served it.
            request.state["backend"] = backend
            # `send`, inlined: a coroutine frame less per request.
            backend.in_flight += 1
            start = self.clock.now()
            try:
                response = await self._forward(request, backend)
            except BaseException as exc:
                self._failed(backend, exc)
                if not isinstance(exc, CONNECT_FAILURES):
                    raise
                # Nothing reached the backend: another one may take the request as it is.
                tried = {*tried, backend.key}
                if not any(b.available and b.key not in tried for b in backends):
                    raise
                continue
            self._answered(backend, response, start)
            if set_cookie is not None:
                response.headers.add("set-cookie", set_cookie)
            return response

    def pick(self, request: Request) -> Backend | None:
        """The backend for `request` among the available ones, or None."""
        return self._choose(request, self.backends, self.balancer.pick)[0]

    def _choose(
        self,
        request: Request,
        backends: Sequence[Backend],
        pick: Callable[[Sequence[Backend], Request], Backend | None],
    ) -> tuple[Backend | None, str | None]:
        if self.sticky is None:
            return pick(backends, request), None
        choice = self.sticky.choose(request, backends, pick)
        return (None, None) if choice is None else (choice.backend, choice.set_cookie)

    async def send(self, request: Request, backend: Backend) -> Response:
        """Forward to `backend`, counted in flight until the body ends; the outcome feeds health."""
        backend.in_flight += 1
        start = self.clock.now()
        try:
            response = await self._forward(request, backend)
        except BaseException as exc:
            self._failed(backend, exc)
            raise
        self._answered(backend, response, start)
        return response

    def _failed(self, backend: Backend, exc: BaseException) -> None:
        """`send` to `backend` raised `exc`: no longer in flight, and a failure of the backend's
        own counts against its passive health."""
        backend.in_flight -= 1
        if isinstance(exc, _BACKEND_FAILURES):
            self.health.report_failure(backend, self.clock.now())

    def _answered(self, backend: Backend, response: Response, start: float) -> None:
        """`backend`'s response head arrived (the exchange began at `start`): its latency and
        status are observed, and it stays in flight until the body is over."""
        self.head_arrived(backend, response.status, start)
        response.body = on_body_end(response.body, functools.partial(self._body_ended, backend))

    def head_arrived(self, backend: Backend, status: int, start: float) -> None:
        """`backend`'s response head, of `status`, arrived (the exchange began at `start`): its
        latency goes into the window and the EWMA, its status to passive health. (The callback
        path calls this, then `_body_ended` when the body is over.)"""
        now = self.clock.now()
        decay = self._decay
        if self._revision_decay and backend.revision:
            decay = self._revision_decay.get(backend.revision, decay)
        backend.observe_latency(now - start, now, decay)
        health = self.health
        if health.passive is not None:  # report_status has nothing to do otherwise
            health.report_status(backend, status, now)

    def _body_ended(self, backend: Backend, error: BaseException | None) -> None:
        backend.in_flight -= 1
        if isinstance(error, _BACKEND_FAILURES):
            self.health.report_failure(backend, self.clock.now())

    # ----------------------------------------------------------------------- mirroring

    def _maybe_mirror(self, request: Request) -> BodyStream | None:
        """Start the shadow copy of `request` when it is drawn; the teed primary body, if any."""
        policy = self.mirror
        if policy is None or self._task_group is None:
            return None
        shadow_service = self.services.get(policy.config.service)
        if shadow_service is None or not policy.selected() or not policy.try_acquire(request.content_length):
            return None
        request.state[MIRRORED] = policy.config.service  # for the metrics' mirror_requests_total
        teed: BodyStream | None = None
        if request.has_body:
            request.body, shadow_body = tee(request.body, policy.config.max_body)
            teed = request.body
        else:
            shadow_body = empty_body()
        shadow = Request(
            request.method,
            request.target,
            request.headers.copy(),
            shadow_body,
            client_addr=request.client_addr,
            client_ip=request.client_ip,
            scheme=request.scheme,
            http_version=request.http_version,
            stream_id=request.stream_id,
            request_id=request.request_id,
            content_length=request.content_length,
            route=request.route,
            state=dict(request.state),
            sni=request.sni,
            clock=request.clock,
        )
        # The shadow keeps this generation in flight: what it uses is closed only after it ends.
        release = self._hold() if self._hold is not None else None
        self._task_group.start_soon(
            self._shadow, policy, shadow_service, shadow, release, name=f"mirror of {self.name}"
        )
        return teed

    async def _shadow(
        self,
        policy: MirrorPolicy,
        service: HttpService,
        request: Request,
        release: Callable[[], None] | None,
    ) -> None:
        try:
            response = await service(request)
            try:
                async for _ in response.body:
                    pass
            finally:
                await response.body.aclose()
        except ShadowAbandoned:
            policy.stats.abandoned += 1
        except Exception as exc:  # a shadow never affects anything else: count it and move on
            policy.stats.failed += 1
            _log.debug("mirror of %s to %s failed: %s", self.name, service.name, exc)
        finally:
            try:
                await request.body.aclose()
            finally:
                policy.release()
                if release is not None:
                    release()
