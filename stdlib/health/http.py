"""`health_check`: active HTTP probes of every backend, jittered so probes never align.

```hcl
load_balancer {
  servers = [{ url = "http://gpu-1:8000" }, { url = "http://gpu-2:8000" }]
  health_check {
    path                = "/health"
    interval            = "10s"
    timeout             = "5s"
    status              = "200-399"   # a code or a range
    unhealthy_threshold = 3           # consecutive failed probes to leave rotation
    healthy_threshold   = 1           # consecutive good probes to come back
    hostname            = "model.internal"   # optional Host header
    headers             = { "x-probe" = "a3s" }
  }
}
```

Each backend is probed with `method path` on its own origin (`port` overrides the server's
port). A probe is good when the answer arrives within `timeout` with a status in the expected
range; a refused connection, a reset, a timeout or any other status is a failed probe.

Theory of operation. Each backend has a verdict (healthy or not, healthy at start) and a streak:
the number of consecutive probe results that contradict the verdict. The transition table:

| verdict   | probe | streak after       | verdict after                          |
|-----------|-------|--------------------|----------------------------------------|
| healthy   | good  | 0                  | healthy                                |
| healthy   | bad   | streak + 1         | unhealthy if streak >= unhealthy_threshold (streak reset) |
| unhealthy | bad   | 0                  | unhealthy                              |
| unhealthy | good  | streak + 1         | healthy if streak >= healthy_threshold (streak reset)     |

So a single good probe in a run of bad ones restarts the count, exactly as the thresholds say
"consecutive". Scheduling: a backend's first probe happens at a random point of the first
`jitter * interval`, and each next one `interval` after the previous probe finished, stretched or
shrunk by a uniform ±15%, so a thousand backends added at once do not probe in lockstep. The
scheduler (`due`, `record`) is pure and takes `now`; `HealthChecker.run` is the small loop that
sleeps until the next due probe and runs each probe in its own task, so one hanging backend
never delays the probes of the others.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio

from ...compiler.schema import HealthCheckConfig
from ...runtime.api import SYSTEM_CLOCK, Backend, Clock
from ..registry import register

if TYPE_CHECKING:  # httpx (~2 MiB resident) is imported when a probe runs: see `_httpx`
    import httpx

__all__ = ["JITTER", "HealthChecker", "ProbeState", "next_delay", "probe", "probe_url"]

JITTER = 0.15
# The run loop wakes at least this often to pick up backends added by a reload.
_MAX_IDLE = 1.0

Listener = Callable[[Backend, bool, float], None]
"""Called after every probe with (backend, probe was good, now)."""

Prober = Callable[[str, HealthCheckConfig], Awaitable[bool]]
"""One probe of the backend at this key (a URL, or host:port for TCP): True when good."""


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


def probe_url(backend_url: str, config: HealthCheckConfig) -> str:
    """The probe target: the backend's origin (port overridden by `port`) plus `path`."""
    parts = urlsplit(backend_url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = config.port or parts.port
    netloc = f"{host}:{port}" if port else host
    path = config.path if config.path.startswith("/") else "/" + config.path
    return f"{parts.scheme or 'http'}://{netloc}{path}"


def probe_headers(config: HealthCheckConfig) -> dict[str, str]:
    headers = {"user-agent": "a3s-gateway-health", **config.headers}
    if config.hostname:
        headers["host"] = config.hostname
    return headers


async def probe(client: httpx.AsyncClient, backend_url: str, config: HealthCheckConfig) -> bool:
    """One probe: True when a status in the expected range arrives within `timeout`."""
    httpx = _httpx()
    low, high = config.status_range()
    try:
        with anyio.fail_after(config.timeout):
            response = await client.request(
                config.method,
                probe_url(backend_url, config),
                headers=probe_headers(config),
                timeout=config.timeout,
            )
    except (httpx.HTTPError, TimeoutError, OSError):
        return False
    return low <= response.status_code <= high


def _httpx() -> Any:
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


@register("health", "http", config=HealthCheckConfig)
class HealthChecker:
    """Probes backends on jittered schedules and keeps each one's verdict.

    By default a verdict is written to `backend.healthy`; pass `listener` to combine it with
    other signals instead (the service layer combines it with passive health).
    """

    def __init__(
        self,
        config: HealthCheckConfig,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        listener: Listener | None = None,
        prober: Prober | None = None,
    ) -> None:
        """`prober`: how a backend is probed (TCP services: stdlib/health/tcp.py); default HTTP."""
        self.config = config
        self._prober = prober
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

    def track(self, backends: Sequence[Backend], now: float) -> None:
        """Reconcile the probed set with `backends`: new ones get a jittered first probe time."""
        keys = {b.key for b in backends if not b.draining}
        for key in [k for k in self._targets if k not in keys]:
            del self._targets[key]
        for backend in backends:
            target = self._targets.get(backend.key)
            if target is None and not backend.draining:
                first = now + self.rng.uniform(0.0, JITTER * self.config.interval)
                self._targets[backend.key] = _Target(backend, ProbeState(), first)
            elif target is not None:
                target.backend = backend

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

    def record(self, backend: Backend, good: bool, now: float) -> bool:
        """Apply a probe result at `now` and schedule the next probe; True when the verdict flipped."""
        target = self._targets.get(backend.key)
        if target is None:  # removed while its probe was running
            return False
        flipped = target.state.record(good, self.config.healthy_threshold, self.config.unhealthy_threshold)
        target.probing = False
        target.due = now + next_delay(self.config.interval, self.rng)
        if self.listener is not None:
            self.listener(backend, good, now)
        else:
            backend.healthy = target.state.healthy
        return flipped

    async def check(self, backend: Backend) -> bool:
        """Probe `backend` now and record the result; True when the verdict flipped."""
        if backend.key not in self._targets:
            self._targets[backend.key] = _Target(backend, ProbeState(), self.clock.now())
        good = await self._probe_once(backend)
        return self.record(backend, good, self.clock.now())

    def _probe_once(self, backend: Backend) -> Awaitable[bool]:
        if self._prober is not None:
            return self._prober(backend.url, self.config)
        return probe(self.client, backend.url, self.config)

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # trust_env=False: an HTTP_PROXY in the gateway's environment must not reroute probes.
            self._client = _httpx().AsyncClient(trust_env=False, follow_redirects=False)
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
