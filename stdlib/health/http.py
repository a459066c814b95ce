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
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from ...compiler.schema import HealthCheckConfig
from ...runtime.api import SYSTEM_CLOCK, Backend, Clock
from ..registry import register
from ._scheduler import (
    JITTER,
    Listener,
    ProbeScheduler,
    ProbeState,
    lazy_httpx,
    next_delay,
    probe_headers,
    probe_url,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["JITTER", "HealthChecker", "ProbeState", "Prober", "next_delay", "probe", "probe_url"]

Prober = Callable[[str, HealthCheckConfig], Awaitable[bool]]
"""One probe of the backend at this key (a URL, or host:port for TCP): True when good."""


async def probe(client: httpx.AsyncClient, backend_url: str, config: HealthCheckConfig) -> bool:
    """One probe: True when a status in the expected range arrives within `timeout`."""
    httpx = lazy_httpx()
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


@register("health", "http", config=HealthCheckConfig)
class HealthChecker(ProbeScheduler[HealthCheckConfig]):
    """HTTP probes (or, with `prober`, the TCP probes of stdlib/health/tcp.py)."""

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
        super().__init__(config, client=client, clock=clock, rng=rng, listener=listener)
        self._prober = prober

    def _probe_once(self, backend: Backend) -> Awaitable[bool]:
        if self._prober is not None:
            return self._prober(backend.url, self.config)
        return probe(self.client, backend.url, self.config)
