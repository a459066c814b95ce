"""The health of one service's backends: active probes and passive outcomes, combined.

A backend is healthy when its active verdict is good (or there is no `health_check`) and it is
not evicted by passive health (or there is no `passive_health`). `ServiceHealth` keeps both
tables and writes the combined verdict to `Backend.healthy`, which is all the balancers read:

- an active probe result arrives (`_on_probe`): a good probe also re-admits a passively evicted
  backend early, as documented in `stdlib/health/passive.py`;
- a proxied request ends (`report_status`, `report_failure`): a failure may evict;
- before a pick (`refresh(now)`): evictions whose cool-down has elapsed are lifted. The check is
  lazy and only looks at the evicted backends, so it costs nothing in the common case.

It lives in the service's long-lived state, so verdicts survive reloads. The probe loop runs in
a task of the gateway's task group, inside a cancel scope this object owns: `aclose()` stops it
when the service is removed, and a reload that changes the `health_check` block restarts it.
A reload does that in two steps: `prepare()` (while the new generation is built) makes the new
checkers and returns the step that applies them, which runs at the reload's commit. Until then
the running generation's probes, targets and verdicts are untouched, and a reload that fails
never applies it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import anyio.abc

from ..compiler.schema import AgentHealthConfig, HealthCheckConfig, PassiveHealthConfig
from ..stdlib import registry
from ..stdlib.health._scheduler import ProbeScheduler
from ..stdlib.health.http import Prober
from ..stdlib.health.passive import PassiveHealth
from .api import Backend, Clock, Publish, no_publish

__all__ = ["ActiveConfig", "ServiceHealth"]

ActiveConfig = HealthCheckConfig | AgentHealthConfig

_log = logging.getLogger("a3s_gateway.health")


class ServiceHealth:
    """Active and passive health of one service, combined into `Backend.healthy`."""

    def __init__(
        self, service: str, clock: Clock, publish: Publish = no_publish, prober: Prober | None = None
    ) -> None:
        """`prober`: how the active checks probe a backend (None: HTTP; TCP services pass theirs)."""
        self.service = service
        self.prober = prober
        self.clock = clock
        self.publish = publish
        self.active: ProbeScheduler[Any] | None = None
        # Keys of the backends whose active check says they are saturated (agent_health's Busy):
        # read on every pick, so an empty set is the whole cost when nothing is busy.
        self.busy: set[str] = set()
        self.passive: PassiveHealth | None = None
        # Backends passive health took out of rotation, until `refresh` lifts them: the request
        # path reads the clock for `refresh` only while this is not empty.
        self.evicted: dict[str, Backend] = {}
        self._scope: anyio.CancelScope | None = None
        self._backends: Callable[[], Sequence[Backend]] = tuple
        self._judged: set[str] = set()  # keys of the backends the last configure() was given
        # Each backend's named state (agent_health's) as last published to the live feed.
        self._published_states: dict[str, str] = {}

    # ----------------------------------------------------------------------- configuration

    def configure(
        self,
        active: ActiveConfig | None,
        passive: PassiveHealthConfig | None,
        backends: Callable[[], Sequence[Backend]],
        task_group: anyio.abc.TaskGroup | None,
    ) -> None:
        """Apply a (re)built service's health blocks at once: `prepare` and its step."""
        self.prepare(active, passive, backends, task_group)()

    def prepare(
        self,
        active: ActiveConfig | None,
        passive: PassiveHealthConfig | None,
        backends: Callable[[], Sequence[Backend]],
        task_group: anyio.abc.TaskGroup | None,
    ) -> Callable[[], None]:
        """The step that applies a (re)built service's health blocks; nothing changes before.

        Unchanged blocks keep their tables. A backend the new generation no longer has (a
        server or a revision's server removed by the reload) is forgotten when the step runs:
        re-added later, it starts with a clean record.
        """
        new_passive = self.passive
        if passive is None:
            new_passive = None
        elif new_passive is None or new_passive.config != passive:
            new_passive = PassiveHealth(passive)
        keep_active = self.active is not None and self.active.config == active and self._scope is not None
        checker = None
        if not keep_active and active is not None:
            # The block's kind (`health_check`: http, `agent_health`: agent) runs it.
            kind = registry.lookup("health", active.kind)
            assert kind is not None
            checker = kind.impl(active, clock=self.clock, listener=self._on_probe, prober=self.prober)

        def apply() -> None:
            self._backends = backends
            judged = {backend.key for backend in backends()}
            for key in self._judged - judged:
                self.forget(key)
            self._judged = judged
            if new_passive is not self.passive or new_passive is None:
                self.passive = new_passive
                self._readmit_all()
            if not keep_active:
                self._start(checker, backends, task_group)

        return apply

    def _start(
        self,
        checker: ProbeScheduler[Any] | None,
        backends: Callable[[], Sequence[Backend]],
        task_group: anyio.abc.TaskGroup | None,
    ) -> None:
        self._stop()
        self.active = checker
        self.busy.clear()
        if checker is None or checker.presumed_state is None:
            self._published_states.clear()  # no named states any more
        if checker is None:
            for backend in backends():
                self._apply(backend, self.clock.now())
            return
        if task_group is not None:
            # The scope exists before the task starts, so a reload or a close right after this
            # call cancels a task that has not run yet.
            self._scope = anyio.CancelScope()
            name = f"health checks of service {self.service}"
            task_group.start_soon(self._run, checker, self._scope, name=name)

    async def _run(self, checker: ProbeScheduler[Any], scope: anyio.CancelScope) -> None:
        with scope:
            try:
                await checker.run(self._backends)
            finally:
                with anyio.CancelScope(shield=True):
                    await checker.aclose()

    def _stop(self) -> None:
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None

    async def aclose(self) -> None:
        """Stop probing (the service was removed)."""
        self._stop()

    # ----------------------------------------------------------------------- verdicts

    def healthy(self, key: str, now: float) -> bool:
        active_ok = self.active is None or self.active.healthy(key)
        return active_ok and (self.passive is None or self.passive.available(key, now))

    def state(self, key: str) -> str | None:
        """The backend's named state when the active check reports one (agent_health), else None."""
        return None if self.active is None else self.active.state(key)

    def prefer_ready(self, backends: Sequence[Backend]) -> Sequence[Backend]:
        """The available backends that are not busy; all of `backends` when none is left, so a
        busy backend takes traffic only then. Call only when `busy` is not empty."""
        ready = [b for b in backends if b.available and b.key not in self.busy]
        return ready or backends

    def _apply(self, backend: Backend, now: float) -> None:
        healthy = self.healthy(backend.key, now)
        if healthy != backend.healthy:
            _log.info(
                "service %s: backend %s is %s",
                self.service,
                backend.url,
                "healthy" if healthy else "unhealthy",
            )
            self.publish(
                "health",
                {
                    "service": self.service,
                    "url": backend.url,
                    "healthy": healthy,
                    "revision": backend.revision,
                },
            )
        backend.healthy = healthy
        if self.active is not None and self.active.busy(backend.key):
            self.busy.add(backend.key)
        else:
            self.busy.discard(backend.key)
        if self.passive is not None and not self.passive.available(backend.key, now):
            self.evicted[backend.key] = backend
        else:
            self.evicted.pop(backend.key, None)

    def refresh(self, now: float) -> None:
        """Lift passive evictions whose cool-down has elapsed (call before picking)."""
        if self.evicted:
            for backend in list(self.evicted.values()):
                self._apply(backend, now)

    def _readmit_all(self) -> None:
        evicted, self.evicted = list(self.evicted.values()), {}
        for backend in evicted:
            self._apply(backend, self.clock.now())

    def _on_probe(self, backend: Backend, good: bool, now: float) -> None:
        if good and self.passive is not None:
            self.passive.probe_succeeded(backend.key, now)
        if self.active is not None and self.active.presumed_state is not None:
            self._publish_state(backend, self.active.presumed_state)
        self._apply(backend, now)

    def _publish_state(self, backend: Backend, presumed: str) -> None:
        """An `agent_state` event when the probe changed the backend's named state (before the
        `health` event of a flip the change causes). The change is against what the feed was
        last told, which a reload that replaces the checker keeps; before anything was told, the
        backend is in the state the checker presumes until a first probe (Ready)."""
        state = self.state(backend.key)
        if state is None:
            return
        previous = self._published_states.get(backend.key, presumed)
        self._published_states[backend.key] = state
        if state != previous:
            _log.info("service %s: backend %s is %s (was %s)", self.service, backend.url, state, previous)
            self.publish(
                "agent_state",
                {
                    "service": self.service,
                    "url": backend.url,
                    "state": state,
                    "previous": previous,
                    "revision": backend.revision,
                },
            )

    # ----------------------------------------------------------------------- passive outcomes

    def report_status(self, backend: Backend, status: int, now: float) -> None:
        if self.passive is not None and self.passive.record_status(backend.key, status, now):
            self._apply(backend, now)

    def report_failure(self, backend: Backend, now: float) -> None:
        """A connect error, a timeout or a broken response."""
        if self.passive is not None and self.passive.record_failure(backend.key, now):
            self._apply(backend, now)

    def forget(self, key: str) -> None:
        self.evicted.pop(key, None)
        self.busy.discard(key)
        self._published_states.pop(key, None)
        if self.passive is not None:
            self.passive.forget(key)
