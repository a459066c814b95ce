"""`random`: a backend drawn at random, uniformly or in proportion to its weight.

Stateless, so many gateway workers never synchronise on the same backend. With `weighted = true`
a backend of weight 3 is drawn three times as often as one of weight 1, and weight 0 means no
traffic; otherwise weights are ignored.

```hcl
load_balancer {
  strategy = "random"
  servers = [{ url = "http://a:8000", weight = 3 }, { url = "http://b:8000" }]
}
```
"""

from __future__ import annotations

from collections.abc import Sequence

from ...runtime.api import Backend, Request
from ..registry import register
from ._base import BalancerKind, candidates
from .schemas.random import RandomConfig


@register("balancer", "random")
class RandomBalancer(BalancerKind[RandomConfig]):
    def pick(self, backends: Sequence[Backend], request: Request | None) -> Backend | None:
        cands = candidates(backends)
        if not self.config.weighted:
            return self.rng.choice(cands) if cands else None
        cands = [b for b in cands if b.weight > 0]
        if not cands:
            return None
        return self.rng.choices(cands, weights=[b.weight for b in cands])[0]
