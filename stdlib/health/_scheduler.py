"""What the active health kinds share: the jittered probe schedule, the verdict's streak table
and the probe target (stdlib/health/http.py explains both; stdlib/health/agent.py reuses them).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

import anyio

from ...runtime.api import SYSTEM_CLOCK, Backend, Clock

if TYPE_CHECKING:  # httpx (~2 MiB resident) is imported when a probe runs: see `lazy_httpx`
    import httpx

__all__ = [
    "JITTER",
    "Listener",
    "ProbeScheduler",
    "ProbeState",
    "lazy_httpx",
    "next_delay",
    "probe_headers",
    "probe_url",
]

JITTER = 0.15
# The run loop wakes at least this often to pick up backends added by a reload.
_MAX_IDLE = 1.0

Listener = Callable[[Backend, bool, float], None]
"""Called after every probe with (backend, probe was good, now)."""


class Timing(Protocol):
    """What the scheduler reads of a health block, whichever kind it is."""

    @property
    def interval(self) -> float: ...
    @property
    def healthy_threshold(self) -> int: ...
    @property
    def unhealthy_threshold(self) -> int: ...


C = TypeVar("C", bound=Timing)


@dataclass(slots=True)
class ProbeState:
    """One backend's verdict and the streak of probe results contradicting it (see the table above)."""

    healthy: bool = True
    streak: int = 0

    def record(self, good: bool, healthy_threshold: int, unhealthy_threshold: int) -> bool:
        """Apply one probe result; True when the verdict flipped."""
        if good == self.healthy:
            self.streak = 0
            return False
        self.streak += 1
        if self.streak < (healthy_threshold if good else unhealthy_threshold):
            return False
        self.healthy, self.streak = good, 0
        return True


def next_delay(interval: float, rng: random.Random, jitter: float = JITTER) -> float:
    """`interval` stretched or shrunk by a uniform factor in [1 - jitter, 1 + jitter]."""
    return interval * (1.0 + rng.uniform(-jitter, jitter))


class _TargetConfig(Protocol):
    @property
    def port(self) -> int | None: ...
    @property
    def path(self) -> str: ...


class _HeaderConfig(Protocol):
    @property
    def headers(self) -> dict[str, str]: ...
    @property
    def hostname(self) -> str | None: ...


def probe_url(backend_url: str, config: _TargetConfig, path: str | None = None) -> str:
    """The probe target: the backend's origin (port overridden by `port`) plus `path`."""
    parts = urlsplit(backend_url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = config.port or parts.port
    netloc = f"{host}:{port}" if port else host
    path = config.path if path is None else path
    path = path if path.startswith("/") else "/" + path
    return f"{parts.scheme or 'http'}://{netloc}{path}"


def probe_headers(config: _HeaderConfig) -> dict[str, str]:
    headers = {"user-agent": "a3s-gateway-health", **config.headers}
    if config.hostname:
        headers["host"] = config.hostname
    return headers


def lazy_httpx() -> Any:
    """httpx, imported on first use: this module is loaded with every health kind, also by a
    worker whose configuration has no active health check."""
    import httpx

    return httpx


@dataclass(slots=True)
class _Target:
    backend: Backend
    state: ProbeState
    due: float
    probing: bool = False


class ProbeScheduler(Generic[C]):
    """Probes backends on jittered schedules and keeps each one's verdict; a kind says how one
    backend is probed (`_probe_once`).

    By default a verdict is written to `backend.healthy`; pass `listener` to combine it with
    other signals instead (the service layer combines it with passive health).
    """

    def __init__(
        self,
        config: C,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        listener: Listener | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()
        self.listener = listener
        self._client = client
        self._targets: dict[str, _Target] = {}
        self._wake: anyio.Event | None = None

    def healthy(self, key: str) -> bool:
        """The active verdict for a backend (True for one not probed yet)."""
        target = self._targets.get(key)
        return target is None or target.state.healthy

    def busy(self, key: str) -> bool:
        """Whether the backend said it is saturated (a kind that reads load says so)."""
        return False

    # A kind that names states: the one a backend is presumed in until its first probe.
    presumed_state: ClassVar[str | None] = None

    def state(self, key: str) -> str | None:
        """The backend's named state, for kinds that report more than healthy or not."""
        return None

    def track(self, backends: Sequence[Backend], now: float) -> None:
        """Reconcile the probed set with `backends`: new ones get a jittered first probe time."""
        keys = {b.key for b in backends if not b.draining}
        for key in [k for k in self._targets if k not in keys]:
            del self._targets[key]
            self.forget(key)
        for backend in backends:
            target = self._targets.get(backend.key)
            if target is None and not backend.draining:
                first = now + self.rng.uniform(0.0, JITTER * self.config.interval)
                self._targets[backend.key] = _Target(backend, ProbeState(), first)
            elif target is not None:
                target.backend = backend

    def forget(self, key: str) -> None:
        """A backend left the probed set (a kind with per-backend records drops them here)."""

    def due(self, backends: Sequence[Backend], now: float) -> list[Backend]:
        """Track `backends` and claim the ones whose probe is due at `now` (marked as probing)."""
        self.track(backends, now)
        ready = [t for t in self._targets.values() if not t.probing and t.due <= now]
        for target in ready:
            target.probing = True
        return [t.backend for t in ready]

    def next_due(self) -> float | None:
        waiting = [t.due for t in self._targets.values() if not t.probing]
        return min(waiting) if waiting else None

    def record(self, backend: Backend, good: bool | None, now: float) -> bool:
        """Apply a probe result at `now` and schedule the next probe; True when the verdict flipped.

        `good` None is a probe that is neither good nor bad (a model server still loading): the
        streak is left as it is, so it counts as no failure and no success.
        """
        target = self._targets.get(backend.key)
        if target is None:  # removed while its probe was running
            return False
        flipped = good is not None and target.state.record(
            good, self.config.healthy_threshold, self.config.unhealthy_threshold
        )
        target.probing = False
        target.due = now + next_delay(self.config.interval, self.rng)
        if self.listener is not None:
            self.listener(backend, good is True, now)
        else:
            backend.healthy = self.healthy(backend.key)
        return flipped

    async def check(self, backend: Backend) -> bool:
        """Probe `backend` now and record the result; True when the verdict flipped."""
        if backend.key not in self._targets:
            self._targets[backend.key] = _Target(backend, ProbeState(), self.clock.now())
        good = await self._probe_once(backend)
        return self.record(backend, good, self.clock.now())

    def _probe_once(self, backend: Backend) -> Awaitable[bool | None]:
        raise NotImplementedError

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # trust_env=False: an HTTP_PROXY in the gateway's environment must not reroute probes.
            self._client = lazy_httpx().AsyncClient(trust_env=False, follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def run(self, backends: Callable[[], Sequence[Backend]]) -> None:
        """Probe the backends `backends()` returns, forever (until the caller cancels)."""
        async with anyio.create_task_group() as tg:
            while True:
                now = self.clock.now()
                for backend in self.due(backends(), now):
                    tg.start_soon(self._probe, backend)
                wake = self.next_due()
                delay = _MAX_IDLE if wake is None else min(max(0.0, wake - now), _MAX_IDLE)
                self._wake = anyio.Event()
                with anyio.move_on_after(delay):
                    await self._wake.wait()

    async def _probe(self, backend: Backend) -> None:
        good = await self._probe_once(backend)
        self.record(backend, good, self.clock.now())
        if self._wake is not None:
            self._wake.set()

    def statistics(self) -> Mapping[str, int]:
        states = [t.state for t in self._targets.values()]
        return {"backends": len(states), "unhealthy": sum(not s.healthy for s in states)}
