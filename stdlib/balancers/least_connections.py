"""`least-connections`: the available backend with the fewest requests in flight.

A request counts as in flight until its response body has ended or the client has gone away, so
long streaming responses (LLM token streams) weigh on their backend for as long as they last.
Ties are broken by rotation: among the backends sharing the minimum, successive picks take each
in turn, so an idle pool is spread evenly instead of always hitting the first backend. Weights
are ignored.

```hcl
load_balancer {
  strategy = "least-connections"
  servers = [{ url = "http://gpu-1:8000" }, { url = "http://gpu-2:8000" }]
}
```
"""

from __future__ import annotations

from collections.abc import Sequence

from ...runtime.api import Backend, Request
from ..base import BuildContext
from ..registry import register
from ._base import BalancerKind, Cursor, candidates
from .schemas.least_connections import LeastConnectionsConfig


@register("balancer", "least-connections")
class LeastConnections(BalancerKind[LeastConnectionsConfig]):
    state: Cursor

    @classmethod
    def new_state(cls, config: LeastConnectionsConfig, ctx: BuildContext) -> Cursor:
        return Cursor()

    def pick(self, backends: Sequence[Backend], request: Request | None) -> Backend | None:
        cands = candidates(backends)
        if not cands:
            return None
        fewest = min(b.in_flight for b in cands)
        ties = [b for b in cands if b.in_flight == fewest]
        return ties[self.state.advance(len(ties))]
