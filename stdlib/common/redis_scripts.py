"""A Redis connection that runs Lua scripts from any anyio backend, for the kinds that share state in Redis.

Used by `rate-limit-redis`, `llm-keys` and `cache`. Under asyncio (and uvloop) it is redis-py's asyncio
client; under trio, where that client cannot run, the same call goes through redis-py's blocking
client in a worker thread. Scripts run with EVALSHA and fall back to EVAL when the server answers
NOSCRIPT (a restarted or flushed Redis), so a script is never sent twice in the common case.

Timeouts are short and there is one attempt: a slow Redis must not hold requests (the caller
decides whether to fail open or closed). After a failure the caller is told to leave Redis alone
for `retry_interval` (`RedisHealth`), so an outage never adds a timeout to every request.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import redis
import redis.asyncio
import redis.asyncio.retry
import redis.retry
from redis.backoff import NoBackoff

__all__ = ["REDIS_ERRORS", "RedisHealth", "RedisScripts", "Script", "on_asyncio"]

# What a failed Redis call raises: a refused or reset connection, a timeout, a Redis error reply.
REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError, TimeoutError)


@dataclass(frozen=True)
class Script:
    """A Lua script and its SHA-1 (what EVALSHA names it by)."""

    source: str
    sha: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


@dataclass(eq=False)
class RedisScripts:
    """The Redis clients of one node (created on first use), closed with the node's state."""

    url: str
    timeout: float
    _async: redis.asyncio.Redis | None = field(default=None, init=False, repr=False)
    _sync: redis.Redis | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def async_client(self) -> redis.asyncio.Redis:
        if self._async is None:
            retry = redis.asyncio.retry.Retry(NoBackoff(), 0)
            self._async = redis.asyncio.Redis.from_url(self.url, retry=retry, **self._options())
        return self._async

    def sync_client(self) -> redis.Redis:
        with self._lock:
            if self._sync is None:
                retry = redis.retry.Retry(NoBackoff(), 0)
                self._sync = redis.Redis.from_url(self.url, retry=retry, **self._options())
            return self._sync

    def _options(self) -> dict[str, Any]:
        return {"socket_connect_timeout": self.timeout, "socket_timeout": self.timeout}

    async def run(self, script: Script, keys: list[str], args: list[str | int | float]) -> Any:
        """Run `script` atomically in Redis with `keys` and `args`; its reply."""
        if on_asyncio():
            client = self.async_client()
            try:
                return await client.evalsha(script.sha, len(keys), *keys, *args)
            except redis.exceptions.NoScriptError:
                return await client.eval(script.source, len(keys), *keys, *args)
        return await anyio.to_thread.run_sync(self._run_blocking, script, keys, args, abandon_on_cancel=True)

    def _run_blocking(self, script: Script, keys: list[str], args: list[str | int | float]) -> Any:
        client = self.sync_client()
        try:
            return client.evalsha(script.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return client.eval(script.source, len(keys), *keys, *args)

    async def command(self, name: str, *args: Any) -> Any:
        """One plain command (HGET, HSET, HDEL, HGETALL ...), on whichever client fits the backend."""
        if on_asyncio():
            return await self.async_client().execute_command(name, *args)  # type: ignore[no-untyped-call]
        return await anyio.to_thread.run_sync(
            lambda: self.sync_client().execute_command(name, *args),  # type: ignore[no-untyped-call]
            abandon_on_cancel=True,
        )

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.aclose()
        if self._sync is not None:
            self._sync.close()


@dataclass(eq=False)
class RedisHealth:
    """When Redis may be asked again after a failure, and when the last warning was logged."""

    retry_interval: float
    down_until: float = 0.0
    last_warning: float = float("-inf")

    def usable(self, now: float) -> bool:
        return now >= self.down_until

    def failed(self, now: float) -> bool:
        """Record a failure at `now`; True when a warning is due (at most one per interval)."""
        self.down_until = now + self.retry_interval
        if now - self.last_warning >= self.retry_interval:
            self.last_warning = now
            return True
        return False


def on_asyncio() -> bool:
    """Whether redis-py's asyncio client can run here (asyncio or uvloop; not trio).

    Asked through anyio, so this module names no event loop (only the launcher does).
    """
    backend = getattr(anyio.lowlevel.current_token(), "backend_class", None)
    return getattr(backend, "__name__", "").startswith("AsyncIO")
