"""A service's revisions: tag routing, the traffic split, per-revision statistics, the rollout.

Each request goes to the revision its header or cookie pins (tag routing), or else to one drawn
by the traffic split, which a rollout moves. Within the revision it is served like a plain
service's request (`path.serve_on`): the balancer (the revision's own strategy, or the
service's) picks among the revision's available backends, the service's active and passive
health judge them, and a backend that refuses the connection hands the request to another of the
revision. A scaled revision is served as a scaled service is (`serve_scaled`); its latency for
the rollout starts when a replica takes the request, so it is judged on its answers, not on its
cold start. Each revision's requests, errors (5xx, no answer, or no available backend) and
latency to the response head are recorded; the rollout machine is ticked from those numbers as
responses come in.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ...compiler.schema import ServiceConfig
from ...runtime.api import Backend, Clock, Request, Response
from ...runtime.errors import GatewayError, NoHealthyBackend
from ..base import BuildContext
from ._revisions import RevisionStats, pick_revision, pinned_revision, split_traffic
from ._rollout import Phase, RolloutState, Start, Tick, transition
from ._scaler import Scaler
from ._serve import ServicePath, serve_scaled

__all__ = ["RevisionSet"]

_ROLLOUT_TICK = 0.2


class RevisionSet:
    """Long-lived: a service's revisions, their statistics and its rollout state."""

    def __init__(self, service: str, ctx: BuildContext) -> None:
        self.service = service
        self.log: logging.Logger = ctx.logger.getChild(f"revisions.{service}")
        self.clock = ctx.clock
        self.publish = ctx.publish  # the live feed: rollout steps, completion and rollbacks
        self.recorder = ctx.recorder
        self.backends: dict[str, list[Backend]] = {}
        self.percents: dict[str, float] = {}
        self.tags: list[tuple[str, str | None]] = []
        self.stats: dict[str, RevisionStats] = {}
        self.config: ServiceConfig | None = None
        self.state: RolloutState | None = None
        self._last_tick = float("-inf")
        self._random = random.Random()

    def prepare(
        self, config: ServiceConfig, clock: Clock, resolve: Callable[[str], str]
    ) -> Callable[[], None]:
        """The step that applies a (re)loaded config; nothing the running generation reads
        changes before it runs (a reload runs it at its commit, never when it fails).
        Statistics of kept revisions and a resumable rollout stay."""
        old = {b.url: b for group in self.backends.values() for b in group}
        servers = {r.name: [(resolve(s.url), s.weight) for s in r.servers if s.url] for r in config.revisions}
        backends = {
            name: [old.get(url) or Backend(url=url) for url, _ in group] for name, group in servers.items()
        }
        rollout = config.rollout
        retention = max(600.0, 2 * rollout.step_interval_secs) if rollout else 600.0
        stats = {r.name: self.stats.get(r.name) or RevisionStats(r.name, retention) for r in config.revisions}

        def apply() -> None:
            # Weights and revision names are set in place: a kept backend's counters and
            # health stay on one object.
            for name, group in servers.items():
                for backend, (_, weight) in zip(backends[name], group, strict=True):
                    backend.weight, backend.revision = weight, name
            self.config, self.clock = config, clock
            self.backends, self.stats = backends, stats
            self.percents = {r.name: r.traffic_percent for r in config.revisions}
            self.tags = [(r.name, r.tag) for r in config.revisions]
            # Decided now, not at prepare: the rollout may have moved since.
            if rollout is None:
                self.state = None
            elif self.state is None or not self.state.resumes(rollout):
                self.state = transition(rollout, RolloutState.initial(rollout), Start(), clock.now())
                self.log.info(
                    "rollout %s -> %s started at %g%%", rollout.from_, rollout.to, self.state.percentage
                )
                self._published(self.state)

        return apply

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
        if scaler is not None:
            # The latency judged by a rollout starts when a replica takes the request: a
            # revision that scaled to zero must not be rolled back for its cold start.
            def sent(req: Request, backend: Backend) -> Awaitable[Response]:
                nonlocal start
                start = clock.now()
                return path.send(req, backend)

            def outcome(error: bool) -> None:
                self.record(name, clock.now() - start, error=error)

            return await serve_scaled(scaler, request, path, sent, path.balancer_for(name), outcome)
        try:
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
        if new.phase is Phase.ROLLED_BACK and state.phase is not Phase.ROLLED_BACK:
            self.recorder.rollback(self.service)
        if (new.phase, new.percentage) != (state.phase, state.percentage):
            level = logging.WARNING if new.phase is Phase.ROLLED_BACK else logging.INFO
            self.log.log(
                level, "rollout %s: %s at %g%% %s", state.to, new.phase.value, new.percentage, new.reason
            )
            self._published(new)
        self.state = new

    def _published(self, state: RolloutState) -> None:
        fields = ("from_", "to", "phase", "step", "percentage", "reason")
        data = {name.rstrip("_"): getattr(state, name) for name in fields}
        self.publish("rollout", {"service": self.service, **data, "phase": state.phase.value})

    def snapshot(self) -> dict[str, Any]:
        now = self.clock.now()
        return {
            "weights": self.weights(),
            "rollout": self.state.to_dict() if self.state else None,
            "stats": {name: s.snapshot(now) for name, s in self.stats.items()},
        }
