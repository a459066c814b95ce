"""`http` (alias `box`, the A3S docs' name): a webhook executor for any orchestrator.

    scaling {
      executor = "http"
      http {
        scale_url       = "https://orchestrator.internal/v1/services/llm/scale"
        endpoints_url   = "https://orchestrator.internal/v1/services/llm/endpoints"
        auth_header_env = "ORCH_TOKEN"     # the header's value is read from this variable
      }
    }

Scaling POSTs `{"service": "<service name>", "replicas": N}` (JSON) to `scale_url`; any 2xx is
success. A failed POST is retried every `poll_interval` until it succeeds or a newer count
replaces it. Ready endpoints are read with `GET endpoints_url`, every `poll_interval`, and every
`fast_poll_interval` while fewer replicas are ready than were asked for (so a cold start is seen
quickly). The answer may be a JSON list of URLs, or `{"endpoints": [...]}` whose items are URLs
or objects `{"url": "...", "ready": true}` (an item with `"ready": false` is left out).

Authentication: when `auth_header_env` is set, the value of that environment variable is sent in
the `auth_header` header (`authorization` by default) on both calls; write the variable's value
in full (`Bearer ...`). `headers` adds fixed headers. A missing variable is an error at start.

The A3S docs write `executor = "box"` with no block; `scale_url` and `endpoints_url` are
required, so the compiler reports them as missing there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import anyio
import httpx

from ..base import BuildContext
from ..registry import register
from ._base import Executor
from .schemas.http import HttpExecutorConfig

__all__ = ["HttpExecutor", "HttpExecutorConfig", "parse_endpoints"]


def parse_endpoints(payload: Any) -> list[str]:
    """URLs from `[...]` or `{"endpoints": [...]}`; items are URLs or `{"url", "ready"}` objects."""
    items = payload.get("endpoints", []) if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise ValueError("expected a list of endpoints")
    urls: list[str] = []
    for item in items:
        if isinstance(item, str):
            urls.append(item)
        elif (
            isinstance(item, dict)
            and isinstance(item.get("url"), str)
            and item.get("ready", True) is not False
        ):
            urls.append(item["url"])
    return urls


@register("executor", "http")
class HttpExecutor(Executor[HttpExecutorConfig]):
    """Asks a webhook for replicas and polls another for the ready ones."""

    def __init__(self, config: HttpExecutorConfig, ctx: BuildContext, *, servers: Sequence[str] = ()) -> None:
        super().__init__(config, ctx, servers=servers)
        self._sent: int | None = None
        self.errors = 0

    def _headers(self) -> dict[str, str]:
        headers = dict(self.config.headers)
        name = self.config.auth_header_env
        if name:
            value = self.ctx.env.get(name, os.environ.get(name))
            if value is None:
                raise RuntimeError(f"environment variable {name} (auth_header_env) is not set")
            headers[self.config.auth_header] = value
        return headers

    async def _main(self) -> None:
        async with httpx.AsyncClient(
            timeout=self.config.timeout, headers=self._headers(), trust_env=False
        ) as client:
            while True:
                self._wake = anyio.Event()
                if self._sent != self.desired:
                    await self._post(client, self.desired)
                await self._poll(client)
                pending = self._sent != self.desired or len(self.ready_endpoints()) < self.desired
                interval = self.config.fast_poll_interval if pending else self.config.poll_interval
                with anyio.move_on_after(interval):
                    await self._wake.wait()

    async def _post(self, client: httpx.AsyncClient, desired: int) -> None:
        body = {"service": self.ctx.name, "replicas": desired}
        try:
            response = await client.post(self.config.scale_url, json=body)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            self.errors += 1
            self.log.warning("scale request to %s failed: %s", self.config.scale_url, exc)
            return
        self._sent = desired

    async def _poll(self, client: httpx.AsyncClient) -> None:
        try:
            response = await client.get(self.config.endpoints_url)
            response.raise_for_status()
            urls = parse_endpoints(response.json())
        except (httpx.HTTPError, ValueError, json.JSONDecodeError) as exc:
            self.errors += 1
            self.log.warning("reading endpoints from %s failed: %s", self.config.endpoints_url, exc)
            return
        self.publish(urls)
