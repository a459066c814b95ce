"""`docker`: routers, services and middlewares from container labels, Traefik-style.

    providers {
      docker {
        host               = "unix:///var/run/docker.sock"   # or http://host:2375
        label_prefix       = "a3s"
        exposed_by_default = true      # false: only containers labelled a3s.enable=true
        network            = "backend" # whose address the servers use (default: the first)
      }
    }

    docker run -l 'a3s.http.routers.llm.rule=PathPrefix(`/v1`)' \
               -l 'a3s.http.services.llm.loadbalancer.server.port=8000' vllm/vllm-openai

The labels (docs/providers.md has them all) are read from the Docker Engine API over its socket:
the running containers, then each container event that changes what is served (`start`, `die`,
`health_status`, as Traefik's provider reads them; not the `exec_*` of every health check run)
makes the provider read them again, and each change is one reload. Objects are named as the labels say
(`llm` is `llm@docker` elsewhere). Replicas with the same service labels are servers of one
service; a container not running or not `healthy` (when it has a health check) is left out. A
label that cannot be read is a diagnostic naming the container and the label, and the last good
configuration keeps serving. When the engine cannot be reached, or its events stream ends, the
provider says the source is lost and retries with backoff.

There is no Docker engine on these machines: the provider is tested against a fake engine on a
unix socket that answers in the engine's recorded API shapes (tests/docker_engine.py).
"""

from __future__ import annotations

from typing import Any

from ..registry import register
from ._docker_api import DockerClient, docker_client
from ._docker_labels import DockerOptions, translate_containers
from ._found import Found
from .base import Fragment, ProviderKind, Updates, keep_watching
from .schemas.docker import DockerProviderConfig

__all__ = ["Docker", "DockerProviderConfig"]


@register("provider", "docker")
class Docker(ProviderKind[DockerProviderConfig]):
    async def run(self, updates: Updates) -> None:
        await keep_watching(updates, self._watch, log=self.log)

    async def _watch(self, updates: Updates) -> None:
        async with docker_client(self.config.host, self.config.timeout) as docker, docker.events() as events:
            await self._publish(docker, updates)
            async for event in events:
                if _changes_what_is_served(event):
                    await self._publish(docker, updates)

    async def _publish(self, docker: DockerClient, updates: Updates) -> None:
        options = DockerOptions(
            prefix=self.config.label_prefix,
            exposed_by_default=self.config.exposed_by_default,
            network=self.config.network,
            default_rule=self.config.default_rule,
        )
        found = Found()
        translate_containers(found, await docker.containers(), options)
        await updates.publish(Fragment(self.name, found.tree, found.origins, tuple(found.problems)))


def _changes_what_is_served(event: dict[str, Any]) -> bool:
    # A container with a health check makes exec_create, exec_start and exec_die events on every
    # check: re-reading every container for each would ask the engine N+1 requests a time.
    action = str(event.get("Action") or event.get("status") or "")
    return action in ("start", "die") or action.startswith("health_status")
