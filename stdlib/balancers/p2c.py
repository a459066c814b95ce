"""`p2c`: power of two choices on requests in flight.

Draw two distinct available backends uniformly at random and send the request to the one with
fewer requests in flight. This gets nearly all the benefit of least-connections (the maximum
load drops exponentially compared with random) while avoiding its herd behaviour: when several
gateway workers each see a slightly stale picture, least-connections sends all of them to the
same idle backend; two random choices do not. Weights are ignored.

```hcl
load_balancer {
  strategy = "p2c"
  servers = [{ url = "http://gpu-1:8000" }, { url = "http://gpu-2:8000" }, { url = "http://gpu-3:8000" }]
}
```
"""

from __future__ import annotations

from collections.abc import Sequence

from ...runtime.api import Backend, Request
from ..registry import register
from ._base import BalancerKind, candidates, two_choices
from .schemas.p2c import P2CConfig


@register("balancer", "p2c")
class PowerOfTwoChoices(BalancerKind[P2CConfig]):
    def pick(self, backends: Sequence[Backend], request: Request | None) -> Backend | None:
        cands = candidates(backends)
        if not cands:
            return None
        return two_choices(self.rng, cands, lambda b: b.in_flight)
