"""etcd provider: routers, services and middlewares from keys under a root key, watched.

```hcl
providers {
  etcd {
    endpoints = ["127.0.0.1:2379"]
    root_key  = "a3s"
  }
}
```

The keys follow Traefik's KV layout on our configuration's key names
(`a3s/http/routers/api/rule`, `a3s/http/services/api/load_balancer/servers/0/url`; the table is
in docs/providers.md). Every object is named `<name>@etcd` in the graph.

It speaks etcd's v3 API through the HTTP/JSON gateway every etcd server has since 3.4
(`/v3/kv/range`, `/v3/watch`), with httpx, so it runs on asyncio and trio alike: one range read
of the whole prefix, then a watch from the next revision, each event applied to the keys it
holds and the whole fragment published again (the gateway throttles the reloads). An
unreachable member, a watch that ends (etcd restarted, a compacted revision) or an error
answer is a lost source: the next endpoint, then the same again after a backoff, with the last
good configuration serving meanwhile.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from ..registry import register
from ._kv import kv_fragment
from .base import ProviderKind, SourceLost, Updates, keep_watching, try_each
from .schemas.etcd import EtcdConfig

__all__ = ["Etcd"]


@register("provider", "etcd")
class Etcd(ProviderKind[EtcdConfig]):
    async def run(self, updates: Updates) -> None:
        await keep_watching(updates, self._watch_any, log=self.log)

    async def _watch_any(self, updates: Updates) -> None:
        async def watch(endpoint: str) -> None:
            url = endpoint if "://" in endpoint else f"http://{endpoint}"
            timeout = httpx.Timeout(self.config.timeout, read=None)  # a watch waits for changes
            async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:
                await self._watch(client, updates)

        await try_each(self.config.endpoints, watch, (httpx.HTTPError, ValueError, KeyError, TypeError))

    async def _watch(self, client: httpx.AsyncClient, updates: Updates) -> None:
        prefix = self.config.root_key.strip("/").encode() + b"/"
        selector = {"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix))}
        answer = await client.post("/v3/kv/range", json=selector, timeout=self.config.timeout)
        answer.raise_for_status()
        data = answer.json()
        revision = int(data["header"]["revision"])
        keys = {_unb64(kv["key"]): _unb64(kv.get("value", "")) for kv in data.get("kvs", [])}
        await updates.publish(self._fragment(keys))
        request = {"create_request": {**selector, "start_revision": str(revision + 1)}}
        async with client.stream("POST", "/v3/watch", json=request) as stream:
            stream.raise_for_status()
            async for line in stream.aiter_lines():
                if line.strip() and _apply(json.loads(line), keys):
                    await updates.publish(self._fragment(keys))

    def _fragment(self, keys: dict[bytes, bytes]) -> Any:
        return kv_fragment(self.name, self.config.root_key, keys.items())


def _apply(message: dict[str, Any], keys: dict[bytes, bytes]) -> bool:
    """Apply one watch response to `keys`; whether it changed any. An error or a cancelled
    watch (a compacted revision) ends the watch: the next attempt reads the range again."""
    if "error" in message:
        raise SourceLost(f"watch error: {message['error'].get('message', message['error'])}")
    result = message.get("result") or {}
    if result.get("canceled") or result.get("compact_revision"):
        raise SourceLost(f"watch cancelled: {result.get('cancel_reason') or 'revision compacted'}")
    events = result.get("events") or []
    for event in events:
        kv = event["kv"]
        if event.get("type") == "DELETE":
            keys.pop(_unb64(kv["key"]), None)
        else:
            keys[_unb64(kv["key"])] = _unb64(kv.get("value", ""))
    return bool(events)


def _prefix_end(prefix: bytes) -> bytes:
    """The range end that selects every key starting with `prefix` (etcd's WithPrefix)."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)
