"""`weighted`: smooth weighted round robin, exactly as nginx does it.

Each pick adds every available backend's weight to its *current weight*, picks the backend with
the largest current weight (the first one on a tie) and subtracts the total weight from it. Over
every window of `sum(weights)` consecutive picks each backend is chosen exactly `weight` times,
and the picks are interleaved rather than bunched: weights 5, 1, 1 give `a a b a c a a`, never
`a a a a a b c`. (The current weights always sum to zero, and after `sum(weights)` picks they are
all zero again, so the sequence is periodic; any window of one period is a rotation of it.)

A backend with weight 0 receives no traffic. When a backend leaves rotation it is skipped
(nginx skips down peers the same way); its current weight is kept and resumes when it returns.

```hcl
load_balancer {
  strategy = "weighted"
  servers = [{ url = "http://big:8000", weight = 5 }, { url = "http://small:8000", weight = 1 }]
}
```
"""

from __future__ import annotations

from collections.abc import Sequence

from ...runtime.api import Backend, Request
from ..base import BuildContext
from ..registry import register
from ._base import BalancerKind, candidates
from .schemas.weighted import WeightedConfig


@register("balancer", "weighted")
class Weighted(BalancerKind[WeightedConfig]):
    # backend key -> nginx's `current_weight`
    state: dict[str, int]

    @classmethod
    def new_state(cls, config: WeightedConfig, ctx: BuildContext) -> dict[str, int]:
        return {}

    def pick(self, backends: Sequence[Backend], request: Request | None) -> Backend | None:
        current = self.state
        best: Backend | None = None
        total = 0
        for backend in candidates(backends):
            if backend.weight <= 0:
                continue
            weight = current.get(backend.key, 0) + backend.weight
            current[backend.key] = weight
            total += backend.weight
            if best is None or weight > current[best.key]:
                best = backend
        if best is None:
            return None
        current[best.key] -= total
        if len(current) > 2 * len(backends) + 8:
            self._forget_removed(backends)
        return best

    def _forget_removed(self, backends: Sequence[Backend]) -> None:
        keep = {b.key for b in backends}
        for key in [k for k in self.state if k not in keep]:
            del self.state[key]
