"""`ewma`: latency-aware balancing by peak-EWMA of response time, as Finagle and Linkerd do it.

Each backend carries an exponentially weighted moving average of its response time (time to the
response head; the service keeps it for every backend, `Backend.observe_latency`, and the admin
API shows it), kept *peak-sensitive*: a response slower than the average replaces it at once,
while faster ones pull it down gradually. The average also decays towards zero while a backend
receives no traffic, so a backend that was slow is tried again after a while instead of being
starved forever. The decay time constant is `decay`: after `decay` seconds without a response the
old average weighs `1/e`.

A backend's cost is `latency_ewma * (in_flight + 1)`: slow backends and busy backends both cost
more. Like Finagle's and Linkerd's balancers, two distinct backends are drawn at random and the
cheaper one wins (power of two choices), so the slowest backend only ever receives traffic once
its average has decayed below another's, and concurrent workers do not all pile onto the
currently fastest backend.

A backend with no observation yet (new, or just added by a reload) gets a neutral prior: the
mean current cost of the backends that have one (or 1 second when none has), so it is neither
flooded nor starved.

```hcl
load_balancer {
  strategy = "ewma"
  servers = [{ url = "http://gpu-1:8000" }, { url = "http://gpu-2:8000" }]
}
```
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from ...runtime.api import Backend, Request
from ..base import BuildContext
from ..registry import register
from ._base import BalancerKind, candidates, two_choices
from .schemas.ewma import EwmaConfig

# Costs are compared, never divided; the floor keeps in-flight counts meaningful once a latency
# has decayed to (nearly) zero.
_FLOOR = 1e-6
_DEFAULT_PRIOR = 1.0


def decayed_latency(backend: Backend, now: float, decay: float) -> float | None:
    """The backend's latency average as of `now`, or None when it was never observed."""
    if backend.latency_stamp <= 0:
        return None
    elapsed = max(0.0, now - backend.latency_stamp)
    return backend.latency_ewma * math.exp(-elapsed / decay)


@register("balancer", "ewma")
class PeakEwma(BalancerKind[EwmaConfig]):
    def __init__(
        self, config: EwmaConfig, state: Any, ctx: BuildContext, *, rng: random.Random | None = None
    ) -> None:
        super().__init__(config, state, ctx, rng=rng)
        self.latency_decay = config.decay  # the service folds each response time with this decay

    def pick(self, backends: Sequence[Backend], request: Request | None) -> Backend | None:
        cands = candidates(backends)
        if not cands:
            return None
        latency = self._latencies(cands, self.ctx.clock.now())
        return two_choices(self.rng, cands, lambda b: max(latency[b.key], _FLOOR) * (b.in_flight + 1))

    def _latencies(self, cands: Sequence[Backend], now: float) -> dict[str, float]:
        known = {b.key: decayed_latency(b, now, self.config.decay) for b in cands}
        observed = [v for v in known.values() if v is not None]
        prior = sum(observed) / len(observed) if observed else _DEFAULT_PRIOR
        return {key: prior if v is None else v for key, v in known.items()}
