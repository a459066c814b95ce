"""`round-robin`: each available backend in turn.

The default strategy. Weights are ignored (use `weighted` for that). The cursor is long-lived
state, so a reload that keeps the service does not send the next request back to the first
backend. When backends leave or rejoin rotation the cursor simply continues over the new set.

```hcl
load_balancer {
  strategy = "round-robin"
  servers = [{ url = "http://10.0.0.1:8000" }, { url = "http://10.0.0.2:8000" }]
}
```
"""

from __future__ import annotations

from collections.abc import Sequence

from ...runtime.api import Backend, Request
from ..base import BuildContext
from ..registry import register
from ._base import BalancerKind, Cursor, candidates
from .schemas.round_robin import RoundRobinConfig


@register("balancer", "round-robin")
class RoundRobin(BalancerKind[RoundRobinConfig]):
    state: Cursor

    @classmethod
    def new_state(cls, config: RoundRobinConfig, ctx: BuildContext) -> Cursor:
        return Cursor()

    def pick(self, backends: Sequence[Backend], request: Request | None) -> Backend | None:
        cands = candidates(backends)
        if not cands:
            return None
        return cands[self.state.advance(len(cands))]
