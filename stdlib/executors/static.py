"""`static`: a fixed list of servers, managed elsewhere, whose readiness is only observed.

    scaling {
      executor = "static"
      static { health_path = "/health", interval = "2s" }   # the block is optional
    }

The servers are the service's own `servers` (or `static { servers = [...] }`). The executor cannot
start or stop anything: `scale()` only records what the autoscaler would like, so a dashboard can
show it. Without `health_path` every server counts as ready; with it, a server is ready while
`GET <server><health_path>` answers 2xx (probed every `interval`). This is the executor for
backends whose replica count someone else owns, with the cold-start buffer still holding requests
while none of them answers.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import httpx

from ..base import BuildContext
from ..registry import register
from ._base import Executor
from .schemas.static import StaticConfig

__all__ = ["StaticConfig", "StaticExecutor"]


@register("executor", "static")
class StaticExecutor(Executor[StaticConfig]):
    """Observes a fixed server list; never creates or removes a server."""

    def __init__(self, config: StaticConfig, ctx: BuildContext, *, servers: Sequence[str] = ()) -> None:
        super().__init__(config, ctx, servers=config.servers or servers)
        if config.health_path is None:
            self.publish(self.servers)

    async def scale(self, desired: int) -> None:
        if desired != self.desired:
            self.log.debug("static executor: %d replicas wanted, %d configured", desired, len(self.servers))
        self.desired = desired

    async def run(self) -> None:
        await self._supervise(self._main if self.config.health_path else None)

    async def _main(self) -> None:
        async with httpx.AsyncClient(timeout=self.config.timeout, trust_env=False) as client:
            while True:
                results: dict[str, bool] = {}
                async with anyio.create_task_group() as tg:
                    for server in self.servers:
                        tg.start_soon(self._check, client, server, results)
                self.publish([s for s in self.servers if results.get(s)])
                await anyio.sleep(self.config.interval)

    async def _check(self, client: httpx.AsyncClient, server: str, results: dict[str, bool]) -> None:
        try:
            response = await client.get(server.rstrip("/") + (self.config.health_path or "/"))
            results[server] = 200 <= response.status_code < 300
        except httpx.HTTPError:
            results[server] = False
