"""List and watch one Kubernetes resource, as client-go's Reflector does.

    list  GET <path>                      -> the objects, and the list's resourceVersion
    watch GET <path>?watch=1&resourceVersion=<rv>&allowWatchBookmarks=true&timeoutSeconds=<t>
          -> one JSON event a line: ADDED / MODIFIED / DELETED (an object), BOOKMARK (only a
             newer resourceVersion), ERROR (a Status)

Every event moves `resource_version` forward, so a watch that ends (its timeout, a dropped
connection) resumes where it stopped, without a re-list. An ERROR with code 410 (Gone: the
server compacted that revision away) is answered by a re-list, as client-go does. So is a
"very short watch" (client-go's name: one that ended within a second with no event), after a
backoff: reopening it at once would ask the API server in a tight loop. A watch that
cannot be reopened (the API server is down) raises: the provider reports the source lost and
retries with backoff, keeping its last fragment.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import anyio
import httpx

from .base import Backoff

__all__ = ["Gone", "Reflector"]

Key = tuple[str, str]


class Gone(Exception):
    """The watch's resourceVersion is too old (410): re-list."""


class Reflector:
    """The objects of one resource, kept in step with the API server."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        path: str,
        headers: Callable[[], dict[str, str]],
        *,
        label_selector: str | None = None,
        changed: Callable[[], None] = lambda: None,
        watch_seconds: tuple[int, int] = (300, 600),
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        self.client = client
        self.path = path
        self.headers = headers
        self.params = {"labelSelector": label_selector} if label_selector else {}
        self.changed = changed
        self.watch_seconds = watch_seconds
        self.clock = clock
        self.backoff = Backoff()
        self.events = 0  # watch events applied, bookmarks included
        self.objects: dict[Key, dict[str, Any]] = {}
        self.resource_version = ""
        self.synced = False
        self.relists = 0

    async def run(self) -> None:
        """List, then watch until cancelled; raises when the API server cannot be reached."""
        await self.list()
        while True:
            started, seen = self.clock(), self.events
            try:
                await self.watch()
            except Gone:
                self.relists += 1
                await self.list()
                continue
            except (httpx.RemoteProtocolError, httpx.ReadError):
                # A watch cut mid-stream: resume from the last revision seen. If the server is
                # really gone, reopening fails with a connect error, which ends the run.
                pass
            if self.events > seen or self.clock() - started >= 1.0:
                self.backoff.reset()
            else:
                await anyio.sleep(self.backoff.next())
                self.relists += 1
                await self.list()

    async def list(self) -> None:
        response = await self.client.get(self.path, params=self.params, headers=self.headers())
        response.raise_for_status()
        body = response.json()
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ValueError(f"{self.path}: the list answer has no items")
        self.objects = {_key(item): item for item in items if isinstance(item, dict)}
        self.resource_version = str(_meta(body).get("resourceVersion") or "")
        self.synced = True
        self.changed()

    async def watch(self) -> None:
        timeout = random.randint(*self.watch_seconds)
        params = {
            **self.params,
            "watch": "1",
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout),
        }
        read_timeout = httpx.Timeout(self.client.timeout.connect, read=timeout + 30.0)
        async with self.client.stream(
            "GET", self.path, params=params, headers=self.headers(), timeout=read_timeout
        ) as response:
            if response.status_code == 410:
                raise Gone()
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.strip():
                    self.apply(json.loads(line))

    def apply(self, event: Any) -> None:
        """One watch event; raises Gone on a 410 ERROR."""
        kind = event.get("type") if isinstance(event, dict) else None
        obj = event.get("object") if isinstance(event, dict) else None
        if not isinstance(obj, dict):
            raise ValueError(f"{self.path}: a watch event without an object")
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise ValueError(f"{self.path}: the watch failed: {obj.get('message') or obj}")
        version = _meta(obj).get("resourceVersion")
        self.events += 1
        if kind in ("ADDED", "MODIFIED"):
            self.objects[_key(obj)] = obj
            self.changed()
        elif kind == "DELETED":
            self.objects.pop(_key(obj), None)
            self.changed()
        elif kind != "BOOKMARK":
            raise ValueError(f"{self.path}: unknown watch event type {kind!r}")
        if version:
            self.resource_version = str(version)


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _key(obj: dict[str, Any]) -> Key:
    meta = _meta(obj)
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")
