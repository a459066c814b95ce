"""Redis provider: the etcd provider's key layout, in Redis, watched.

```hcl
providers {
  redis {
    endpoints = ["127.0.0.1:6379"]
    root_key  = "a3s"
  }
}
```

Each key under `<root_key>/` holds one value as a Redis string (`SET a3s/http/routers/api/rule
"PathPrefix(...)"`); the layout is the etcd provider's (docs/providers.md). Every object is named
`<name>@redis` in the graph.

Changes are seen through keyspace notifications (`notify-keyspace-events` with `K` and the
string and generic classes, e.g. `KA`): the provider subscribes to the prefix's keyspace channel
first, then reads every key (SCAN and MGET), so no change between the two is missed, and reads
them again after each batch of notifications. A server that sends none (the default, or `CONFIG`
disabled) is polled every `poll_interval` instead. A server that cannot be reached, or a
connection that drops, is a lost source: retried with backoff, the last good configuration
serving meanwhile.

It uses redis-py's blocking client in a worker thread (short timeouts, so a cancellation is
noticed within one), which runs the same on asyncio and trio.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.to_thread
import redis

from ..registry import register
from ._kv import kv_fragment
from .base import ProviderKind, Updates, keep_watching, try_each
from .schemas.redis import RedisProviderConfig

__all__ = ["Redis"]

# How long a thread waits for a notification before looking at a cancellation again.
_WAIT = 0.5


@register("provider", "redis")
class Redis(ProviderKind[RedisProviderConfig]):
    async def run(self, updates: Updates) -> None:
        await keep_watching(updates, self._watch_any, log=self.log)

    async def _watch_any(self, updates: Updates) -> None:
        async def watch(endpoint: str) -> None:
            client = self._client(endpoint)
            try:
                await self._watch(client, updates)
            finally:
                await anyio.to_thread.run_sync(client.close)

        await try_each(self.config.endpoints, watch, (redis.exceptions.RedisError, OSError))

    def _client(self, endpoint: str) -> redis.Redis:
        timeout = self.config.timeout
        common: dict[str, Any] = {
            "db": self.config.db,  # a URL's own database and password win over these
            "password": self.config.password,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
        }
        if "://" in endpoint:
            return redis.Redis.from_url(endpoint, **common)
        host, _, port = endpoint.rpartition(":")
        return redis.Redis(host=host or "127.0.0.1", port=int(port or 6379), **common)

    async def _watch(self, client: redis.Redis, updates: Updates) -> None:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            # The database the client reads (a `redis://host/2` URL names its own) is the one
            # whose keyspace notifications tell of changes.
            db = client.connection_pool.connection_kwargs.get("db", 0)
            pattern = f"__keyspace@{db}__:{self._prefix()}*"
            await anyio.to_thread.run_sync(pubsub.psubscribe, pattern)
            notified = await anyio.to_thread.run_sync(self._notifications_on, client)
            if not notified:
                self.log.info("keyspace notifications are off: polling every %gs", self.config.poll_interval)
            while True:
                await updates.publish(await anyio.to_thread.run_sync(self._read, client))
                if notified:
                    await self._wait_notified(pubsub)
                else:
                    await anyio.sleep(self.config.poll_interval)
        finally:
            await anyio.to_thread.run_sync(pubsub.close)

    def _prefix(self) -> str:
        return self.config.root_key.strip("/") + "/"

    @staticmethod
    def _notifications_on(client: redis.Redis) -> bool:
        """Whether the server sends keyspace events for string writes and deletions."""
        try:
            flags = str(client.config_get("notify-keyspace-events").get("notify-keyspace-events", ""))
        except redis.exceptions.ResponseError:  # CONFIG is disabled (managed Redis): poll
            return False
        return "K" in flags and ("A" in flags or {"$", "g"} <= set(flags))

    def _read(self, client: redis.Redis) -> Any:
        keys = sorted(client.scan_iter(match=f"{self._prefix()}*", count=1000))
        values = client.mget(keys) if keys else []
        pairs = [(k, v) for k, v in zip(keys, values, strict=True) if isinstance(v, bytes)]
        # MGET answers nil for a key deleted since the SCAN and for a key that is not a string
        # (a hash, a list...): the second is a mistake in the layout, and says so.
        problems = []
        for key, value in zip(keys, values, strict=True):
            if value is None:
                kind = client.type(key)
                kind = kind.decode("ascii", "replace") if isinstance(kind, bytes) else str(kind)
                if kind != "none":
                    shown = key.decode("utf-8", errors="backslashreplace")
                    problems.append(
                        (f"key {shown}", f"the key holds a Redis {kind}; values are strings (SET)")
                    )
        return kv_fragment(self.name, self.config.root_key, pairs, problems)

    async def _wait_notified(self, pubsub: Any) -> None:
        """Until a notification arrives; then the ones right behind it too (one read for a burst)."""
        while await anyio.to_thread.run_sync(pubsub.get_message, True, _WAIT) is None:
            pass
        while await anyio.to_thread.run_sync(pubsub.get_message, True, 0.05) is not None:
            pass
