"""`discovery`: services that describe themselves at `/.well-known/a3s-service.json`.

    providers {
      discovery {
        seeds    = ["http://10.0.0.5:8000", "http://10.0.0.6:8000"]
        interval = "30s"           # how often each seed is asked and probed
        unhealthy_threshold = 2    # failed checks in a row before a seed is removed
      }
    }

Every `interval`, each seed is asked for its document (A3S's contract: `name`, `version`,
`routes` with `rule`, `middlewares` and `priority`, `health_path`, `weight`; docs/providers.md)
and its `health_path` is probed. A healthy seed is a server of the service its document names,
with its weight; the routes are routers to that service (`<name>-<i>`, `name@discovery`
elsewhere). A seed that stops answering, or whose health check fails, keeps its place until it
has failed `unhealthy_threshold` times in a row, and is then removed (its requests in flight
finish: a reload drains). A document that is not JSON, or not of the contract's shape, is a
diagnostic naming the seed, and the last good configuration keeps serving.
"""

from __future__ import annotations

import anyio
import httpx

from ..registry import register
from ._found import Found
from ._service_json import WELL_KNOWN_PATH, Seen, parse_service_doc, translate_seeds
from .base import Fragment, ProviderKind, Updates
from .schemas.discovery import DiscoveryConfig

__all__ = ["Discovery", "DiscoveryConfig"]


@register("provider", "discovery")
class Discovery(ProviderKind[DiscoveryConfig]):
    async def run(self, updates: Updates) -> None:
        kept: dict[str, Seen] = {}  # the last good answer of each seed still counted
        failures: dict[str, int] = {}
        last: Fragment | None = None
        async with httpx.AsyncClient(timeout=self.config.timeout, trust_env=False) as client:
            while True:
                answers: dict[str, Seen | None] = {}
                async with anyio.create_task_group() as tg:
                    for seed in self.config.seeds:
                        tg.start_soon(self._ask, client, seed, answers)
                for seed in self.config.seeds:
                    seen = answers.get(seed)
                    if seen is not None:
                        failures[seed] = 0
                        kept[seed] = seen
                        continue
                    failures[seed] = failures.get(seed, 0) + 1
                    if failures[seed] >= self.config.unhealthy_threshold and kept.pop(seed, None) is not None:
                        self.log.warning("seed %s failed %d checks in a row: removed", seed, failures[seed])
                found = Found()
                translate_seeds(
                    found, [kept[s] for s in self.config.seeds if s in kept], self.config.entrypoints
                )
                fragment = Fragment(self.name, found.tree, found.origins, tuple(found.problems))
                if fragment != last:  # the same answers again are not news
                    await updates.publish(fragment)
                    last = fragment
                await anyio.sleep(self.config.interval)

    async def _ask(self, client: httpx.AsyncClient, seed: str, answers: dict[str, Seen | None]) -> None:
        """The seed's document when it is healthy; a Seen with an error when the document is
        malformed; None when it does not answer or its health check fails."""
        base = seed.rstrip("/")
        try:
            response = await client.get(base + WELL_KNOWN_PATH)
            if response.status_code != 200:
                answers[seed] = None
                return
            doc = parse_service_doc(response.content)
            if isinstance(doc, str):
                answers[seed] = Seen(seed, error=doc)
                return
            health = await client.get(base + doc.health_path)
        except httpx.HTTPError as exc:
            self.log.debug("seed %s: %s", seed, exc)
            answers[seed] = None
            return
        answers[seed] = Seen(seed, doc) if 200 <= health.status_code < 300 else None
