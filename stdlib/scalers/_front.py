"""The request path of a scaled service, and of a service with revisions.

`scaling_front(...)` is called by the graph for each HTTP service while a generation is built.
It returns None for a plain service, or a `ScalingFront`, which the service calls instead of
picking a backend itself: `await front(request, path)`. `path` is the service's own request path
(`ServicePath`): its balancer, `send` to one backend (in-flight count, latency EWMA, passive
health) and `serve_on` a set of backends (pick, send, and on a connect failure try another), so
a scaled or revisioned service counts, heals and fails over exactly as a plain one does.

Scaled service (`scaling { ... }`): the backends are the executor's ready replicas. A request
takes a slot on one of them at once when it can (the service's balancer chooses among replicas
with a free slot); otherwise it waits in the cold-start buffer, body included, and the scaler is
poked. The slot is released when the response body ends (or the client goes away). With
`buffer_keepalive` set, a waiting request that accepts `text/event-stream` gets its response head
(200, text/event-stream) at once and an SSE comment line every interval until a replica answers;
the replica's body then follows, or an `event: error` when it did not answer 200. With
`buffer_enabled = false` a cold service answers 503 at once (and still scales up).

Revisions (`revisions = [...]`, optional `rollout`): each request goes to the revision its header
or cookie pins (tag routing), or else to one drawn by the traffic split, which a rollout moves.
Within the revision it is served like a plain service's request (`path.serve_on`): the balancer
picks among the revision's available backends, the service's active and passive health judge
them, and a backend that refuses the connection hands the request to another of the revision.
Each revision's requests, errors (5xx, no answer, or no available backend) and latency to the
response head are recorded; the rollout machine is ticked from those numbers as responses come in.

Scaled revisions (the service's `scaling` block, or a revision's own `scaling = { ... }`, merged
by the compiler into `RevisionConfig.scaling`): each such revision is its own scaled unit, as in
Knative, with its own autoscaler, executor, replicas and cold-start buffer (`scaler:svc/rev`).
A request drawn for it is served as a scaled service's request is; its latency for the rollout
starts when a replica takes it, so a revision is judged on its answers, not on its cold start.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import anyio.abc

from ...compiler.ir import Node, fingerprint
from ...compiler.schema import LoadBalancerConfig, ScalingConfig, ServiceConfig
from ...runtime.api import Backend, BodyStream, Clock, Headers, Request, Response, iter_body
from ...runtime.errors import GatewayError, NoHealthyBackend
from ...runtime.state import StateTxn
from ..base import BuildContext
from ._buffer import Lease, Ticket
from ._revisions import RevisionStats, pick_revision, pinned_revision, split_traffic
from ._rollout import Phase, RolloutState, Start, Tick, transition
from ._scaler import Scaler

__all__ = ["RevisionSet", "ScalingFront", "ServicePath", "scaling_front"]

Forward = Callable[[Request, Backend], Awaitable[Response]]


class Balancer(Protocol):
    def pick(self, backends: Sequence[Backend], request: Request) -> Backend | None: ...


class ServicePath(Protocol):
    """What the service (runtime/service.py `HttpService`) lends its front."""

    balancer: Balancer

    def send(self, request: Request, backend: Backend) -> Awaitable[Response]:
        """Forward to `backend`, counted in flight and reported to health and the EWMA."""
        ...

    def serve_on(
        self, request: Request, backends: Sequence[Backend], balancer: Balancer | None = None
    ) -> Awaitable[Response]:
        """Pick among `backends` and send; a connect failure moves the request to another."""
        ...

    def balancer_for(self, revision: str) -> Balancer:
        """The balancer of `revision`: its own strategy's, or the service's."""
        ...


_ROLLOUT_TICK = 0.2


def scaling_front(
    node: Node,
    txn: StateTxn,
    ctx: BuildContext,
    task_group: anyio.abc.TaskGroup,
    resolve: Callable[[str], str] = lambda url: url,
) -> ScalingFront | None:
    """The front of service `node` (None when it has neither scaling nor revisions)."""
    config = node.config
    assert isinstance(config, ServiceConfig)
    scaler: Scaler | None = None
    revisions: RevisionSet | None = None
    revision_scalers: dict[str, Scaler] = {}
    if config.revisions:
        revisions = txn.obtain(node.id, "", lambda: RevisionSet(node.name, ctx), slot="revisions")
        revisions.configure(config, ctx.clock, resolve)
        for revision in config.revisions:
            if revision.scaling is not None:
                servers = [resolve(s.url) for s in revision.servers if s.url]
                unit = f"{node.name}/{revision.name}"
                revision_scalers[revision.name] = _scaler(
                    unit, revision.scaling, servers, txn, ctx, task_group
                )
    elif config.scaling is not None:
        lb = config.load_balancer or LoadBalancerConfig()
        servers = [resolve(s.url) for s in lb.servers if s.url]
        scaler = _scaler(node.name, config.scaling, servers, txn, ctx, task_group)
    if scaler is None and revisions is None:
        return None
    return ScalingFront(config, scaler, revisions, ctx.clock, revision_scalers)


def _scaler(
    unit: str,
    scaling: ScalingConfig,
    servers: list[str],
    txn: StateTxn,
    ctx: BuildContext,
    task_group: anyio.abc.TaskGroup,
) -> Scaler:
    """The live scaler of one scaled unit: a service, or one revision of it (`service/revision`)."""
    # Replicas live as long as the executor and its servers are unchanged.
    key = fingerprint("executor", [scaling.executor, scaling.executor_options, servers])

    def create() -> Scaler:
        scaler = Scaler(unit, scaling, ctx, servers=servers)
        task_group.start_soon(scaler.run)
        return scaler

    scaler: Scaler = txn.obtain(f"scaler:{unit}", key, create, _close_scaler)
    scaler.reconfigure(scaling)
    return scaler


async def _close_scaler(scaler: Any) -> None:
    await scaler.aclose()


# --------------------------------------------------------------------------- the handler


class ScalingFront:
    """Per generation (cheap): routes one request through the scaler or the revisions."""

    def __init__(
        self,
        config: ServiceConfig,
        scaler: Scaler | None,
        revisions: RevisionSet | None,
        clock: Clock,
        revision_scalers: Mapping[str, Scaler] | None = None,
    ) -> None:
        self.config = config
        self.scaler = scaler
        self.revisions = revisions
        self.clock = clock
        # Revisions that scale on their own, by name (the others are served from their servers).
        self.revision_scalers: Mapping[str, Scaler] = revision_scalers or {}

    def __call__(self, request: Request, path: ServicePath) -> Awaitable[Response]:
        if self.scaler is not None:
            return serve_scaled(self.scaler, request, path)
        assert self.revisions is not None
        return self.revisions.handle(request, path, self.revision_scalers)

    def backends(self) -> tuple[Backend, ...]:
        """The backends the service's health checks judge: the servers of unscaled revisions.

        A scaler's replicas are not listed: the scaler starts, probes and retires them itself, so
        only passive health (through `path.send`) applies to them.
        """
        if self.revisions is None:
            return ()
        return tuple(
            b
            for name, group in self.revisions.backends.items()
            if name not in self.revision_scalers
            for b in group
        )

    def has_available(self) -> bool:
        """Whether a request can be served now: a scaled unit always can (it buffers)."""
        if self.revisions is None or self.revision_scalers:
            return True
        return any(b.available for group in self.revisions.backends.values() for b in group)

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.scaler is not None:
            out["scaler"] = self.scaler.snapshot()
        if self.revisions is not None:
            out["revisions"] = self.revisions.snapshot()
        if self.revision_scalers:
            out["revision_scalers"] = {name: s.snapshot() for name, s in self.revision_scalers.items()}
        return out


async def serve_scaled(
    scaler: Scaler,
    request: Request,
    path: ServicePath,
    forward: Forward | None = None,
    balancer: Balancer | None = None,
) -> Response:
    """Serve `request` on a replica of `scaler`: at once if one has a free slot, else buffered.

    `forward` (default `path.send`) is what sends to the chosen replica; a revision passes a
    wrapper that notes when the request left the buffer, so its latency excludes the cold start,
    and its own `balancer` when it has a strategy of its own.
    """
    scaling = scaler.scaling
    send = forward or path.send
    balancer = balancer or path.balancer

    def pick(candidates: Sequence[str]) -> str:
        chosen = balancer.pick([scaler.backend(url) for url in candidates], request)
        return chosen.url if chosen is not None else candidates[0]

    buffer = scaler.buffer
    lease = buffer.try_acquire(pick)
    if lease is not None:
        return await _send(scaler, request, lease, None, send)
    if not scaling.buffer_enabled:
        buffer.demand()
        raise NoHealthyBackend(
            f"service {scaler.service!r} has no ready replica",
            headers=[("retry-after", str(int(buffer.retry_after)))],
        )
    ticket = buffer.enqueue(request.content_length, pick)
    body = request.body if request.has_body else None
    if scaling.buffer_keepalive and _accepts_sse(request):
        return _keepalive_response(scaler, ticket, request, body, scaling.buffer_keepalive, send)
    admission = await ticket.wait(body)
    assert admission is not None
    return await _send(scaler, request, admission.lease, admission.body, send)


async def _send(
    scaler: Scaler, request: Request, lease: Lease, data: bytes | None, forward: Forward
) -> Response:
    if data is not None:
        request.body = iter_body(data)
    try:
        response = await forward(request, scaler.backend(lease.replica))
    except BaseException:
        lease.release()
        raise
    response.body = _OnEnd(response.body, lease.release)
    return response


def _accepts_sse(request: Request) -> bool:
    return "text/event-stream" in (request.headers.get_joined("accept") or "")


def _keepalive_response(
    scaler: Scaler,
    ticket: Ticket,
    request: Request,
    body: BodyStream | None,
    interval: float,
    forward: Forward,
) -> Response:
    """Commit a 200 event stream now; keep it alive until a replica answers, then relay it."""

    async def stream() -> AsyncGenerator[bytes, None]:
        try:
            admission = None
            while admission is None:
                admission = await ticket.wait(body, max_wait=interval)
                if admission is None:
                    yield b": waiting for a replica\n\n"
            response = await _send(scaler, request, admission.lease, admission.body, forward)
        except GatewayError as exc:
            yield _sse_error(exc.status, exc.reason)
            return
        finally:
            ticket.cancel()
        try:
            if response.status != 200:
                yield _sse_error(response.status, "upstream_error")
                return
            async for chunk in response.body:
                yield chunk
        finally:
            await response.aclose()

    headers = Headers.from_pairs(
        [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
            ("x-a3s-cold-start", "buffered"),
        ]
    )
    # A client that leaves before the body is read gives its place (or its slot) back.
    return Response(200, headers, _OnEnd(stream(), ticket.cancel))


def _sse_error(status: int, reason: str) -> bytes:
    return f"event: error\ndata: {json.dumps({'status': status, 'type': reason})}\n\n".encode()


class _OnEnd:
    """A body that calls `done()` once when it ends, fails or is closed early."""

    __slots__ = ("_body", "_done")

    def __init__(self, body: BodyStream, done: Callable[[], None]) -> None:
        self._body = body
        self._done: Callable[[], None] | None = done

    def __aiter__(self) -> _OnEnd:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._body.__anext__()
        except BaseException:
            self._finish()
            raise

    async def aclose(self) -> None:
        self._finish()
        await self._body.aclose()

    def _finish(self) -> None:
        done, self._done = self._done, None
        if done is not None:
            done()


# --------------------------------------------------------------------------- revisions


class RevisionSet:
    """Long-lived: a service's revisions, their statistics and its rollout state."""

    def __init__(self, service: str, ctx: BuildContext) -> None:
        self.service = service
        self.log: logging.Logger = ctx.logger.getChild(f"revisions.{service}")
        self.clock = ctx.clock
        self.backends: dict[str, list[Backend]] = {}
        self.percents: dict[str, float] = {}
        self.tags: list[tuple[str, str | None]] = []
        self.stats: dict[str, RevisionStats] = {}
        self.config: ServiceConfig | None = None
        self.state: RolloutState | None = None
        self._last_tick = float("-inf")
        self._random = random.Random()

    def configure(self, config: ServiceConfig, clock: Clock, resolve: Callable[[str], str]) -> None:
        """Apply a (re)loaded config; statistics of kept revisions and a resumable rollout stay."""
        self.config, self.clock = config, clock
        old = {b.url: b for group in self.backends.values() for b in group}
        self.backends = {
            r.name: [_backend(old, resolve(s.url), s.weight, r.name) for s in r.servers if s.url]
            for r in config.revisions
        }
        self.percents = {r.name: r.traffic_percent for r in config.revisions}
        self.tags = [(r.name, r.tag) for r in config.revisions]
        rollout = config.rollout
        retention = max(600.0, 2 * rollout.step_interval_secs) if rollout else 600.0
        self.stats = {
            r.name: self.stats.get(r.name) or RevisionStats(r.name, retention) for r in config.revisions
        }
        if rollout is None:
            self.state = None
        elif self.state is None or not self.state.resumes(rollout):
            self.state = transition(rollout, RolloutState.initial(rollout), Start(), clock.now())
            self.log.info(
                "rollout %s -> %s started at %g%%", rollout.from_, rollout.to, self.state.percentage
            )

    def weights(self) -> dict[str, float]:
        state = self.state
        if state is None:
            return dict(self.percents)
        return split_traffic(self.percents, (state.from_, state.to, state.percentage))

    def choose(self, request: Request) -> str | None:
        config = self.config
        assert config is not None
        pinned = pinned_revision(request.headers, self.tags, config.revision_header, config.revision_cookie)
        return pinned or pick_revision(self.weights(), self._random.random())

    async def handle(self, request: Request, path: ServicePath, scalers: Mapping[str, Scaler]) -> Response:
        name = self.choose(request)
        if name is None:
            raise NoHealthyBackend(f"service {self.service!r}: no revision takes traffic")
        clock = self.clock
        start = clock.now()
        scaler = scalers.get(name)
        try:
            if scaler is not None:
                # The latency judged by a rollout starts when a replica takes the request: a
                # revision that scaled to zero must not be rolled back for its cold start.
                def sent(req: Request, backend: Backend) -> Awaitable[Response]:
                    nonlocal start
                    start = clock.now()
                    return path.send(req, backend)

                response = await serve_scaled(scaler, request, path, sent, path.balancer_for(name))
            else:
                backends = self.backends.get(name, ())
                if not any(b.available for b in backends):
                    # Counted against the revision: a rollout must see the 503s its clients see.
                    raise NoHealthyBackend(
                        f"service {self.service!r}: revision {name!r} has no available backend"
                    )
                response = await path.serve_on(request, backends, path.balancer_for(name))
        except GatewayError:
            self.record(name, clock.now() - start, error=True)
            raise
        self.record(name, clock.now() - start, error=response.status >= 500)
        return response

    def record(self, name: str, latency: float, *, error: bool) -> None:
        now = self.clock.now()
        stats = self.stats.get(name)
        if stats is not None:
            stats.record(now, latency, error)
        self.tick(now)

    def tick(self, now: float, *, force: bool = False) -> None:
        """Feed the rollout machine the `to` revision's numbers for the current step."""
        config, state = self.config, self.state
        if config is None or config.rollout is None or state is None or state.finished:
            return
        if not force and now - self._last_tick < _ROLLOUT_TICK:
            return
        self._last_tick = now
        stats = self.stats[state.to].since(state.step_started, now)
        new = transition(config.rollout, state, Tick(stats), now)
        if (new.phase, new.percentage) != (state.phase, state.percentage):
            level = logging.WARNING if new.phase is Phase.ROLLED_BACK else logging.INFO
            self.log.log(
                level, "rollout %s: %s at %g%% %s", state.to, new.phase.value, new.percentage, new.reason
            )
        self.state = new

    def snapshot(self) -> dict[str, Any]:
        now = self.clock.now()
        return {
            "weights": self.weights(),
            "rollout": self.state.to_dict() if self.state else None,
            "stats": {name: s.snapshot(now) for name, s in self.stats.items()},
        }


def _backend(old: dict[str, Backend], url: str, weight: int, revision: str) -> Backend:
    backend = old.get(url) or Backend(url=url)
    backend.weight, backend.revision = weight, revision
    return backend
