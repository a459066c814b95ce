"""The few Docker Engine API calls the docker provider makes, over the engine's unix socket.

    GET /containers/json         the running containers
    GET /containers/{id}/json    each one's labels, ports, networks and health
    GET /events?filters=...      container events (start, die, health_status...), streamed

As Traefik does, a container event that changes what is served (start, die, health_status)
means "look again": the provider re-reads the containers and publishes what it finds (the
gateway coalesces bursts). The events stream is opened before
the list is read, so no change between the two is missed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

__all__ = ["DockerClient", "docker_client"]

_EVENTS = json.dumps({"type": ["container"]})


@asynccontextmanager
async def docker_client(host: str, timeout: float) -> AsyncIterator[DockerClient]:
    """A client for `host`: `unix:///var/run/docker.sock` (or a bare path), or `http://host:port`."""
    if host.startswith("unix://") or host.startswith("/"):
        transport = httpx.AsyncHTTPTransport(uds=host.removeprefix("unix://"))
        base = "http://docker"
    else:
        transport = httpx.AsyncHTTPTransport()
        base = host.replace("tcp://", "http://", 1)
    async with httpx.AsyncClient(
        transport=transport, base_url=base, timeout=timeout, trust_env=False
    ) as client:
        yield DockerClient(client)


class DockerClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def containers(self) -> list[dict[str, Any]]:
        """The inspect document of every running container (one gone meanwhile is skipped)."""
        response = await self.client.get("/containers/json")
        response.raise_for_status()
        found = []
        for item in response.json():
            detail = await self.client.get(f"/containers/{item['Id']}/json")
            if detail.status_code == 404:
                continue
            detail.raise_for_status()
            found.append(detail.json())
        return found

    @asynccontextmanager
    async def events(self) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """The container events stream, opened (its response head received) on entry."""
        timeout = httpx.Timeout(self.client.timeout.connect, read=None)  # events can be hours apart
        async with self.client.stream(
            "GET", "/events", params={"filters": _EVENTS}, timeout=timeout
        ) as response:
            response.raise_for_status()
            yield _lines(response)


async def _lines(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    async for line in response.aiter_lines():
        if line.strip():
            event = json.loads(line)
            if isinstance(event, dict):
                yield event
