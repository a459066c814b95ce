"""The live feed's hub: state changes and once-a-second samples, fanned out to each watcher.

Publishers (the reload path, the health checkers, scalers and rollouts, through `Publish` in
runtime/api.py) call `publish(event, data)` on the event loop; it never blocks. Each watcher of
`GET /api/gateway/live` holds a `Feed`, a bounded queue of its own that its response drains at
the pace of its client. A slow client must never make the gateway buffer without bound, so a
full queue drops its oldest *sample* first (the next one supersedes it) and only then its oldest
state change; `LiveFeed.dropped` counts what was dropped, and the next event the client gets
carries that count (`dropped`), so it knows it missed some.

The sampler (`sample` below, a function of the gateway) runs in a task of the gateway's while at
least one open feed takes samples, once per `interval`, and stops with the last of them: a
gateway nobody watches (or watches only for state changes) pays nothing. `end_all(reason)` ends
every feed after what it holds (shutdown, reload).

Under `run --workers N` a worker's hub also relays each state change to the other workers and
`deliver`s theirs to its watchers (runtime/observe/relay.py), so a watcher sees the gateway's
state changes whichever worker it is connected to.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

__all__ = ["FeedEnded", "FeedEvent", "LiveFeed", "LiveHub"]

_log = logging.getLogger("a3s_gateway.live")

SAMPLE = "sample"
END = "end"
MAX_QUEUED = 64  # events a watcher may fall behind by before the oldest are dropped


@dataclass(frozen=True, slots=True)
class FeedEvent:
    name: str  # the SSE `event:` name: sample, end, or a state change (RELAYED)
    data: Mapping[str, Any]


class FeedEnded(Exception):
    """The feed is over (`reason`: shutdown, reload, closed); its `end` event was delivered."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LiveFeed:
    """One watcher's bounded queue."""

    def __init__(self, hub: LiveHub, events: frozenset[str] | None = None, limit: int = MAX_QUEUED) -> None:
        self._hub = hub
        self.events = events  # the event names this watcher asked for (None: all)
        self._queue: deque[FeedEvent] = deque()
        self._limit = limit
        self._wake = anyio.Event()
        self._ended: str | None = None
        self.dropped = 0
        self._told = 0  # the `dropped` count the client was last told

    def wants(self, name: str) -> bool:
        return self.events is None or name in self.events

    def push(self, event: FeedEvent) -> None:
        if self._ended is not None or not self.wants(event.name):
            return
        queue = self._queue
        if len(queue) >= self._limit:
            self._drop_one()
        queue.append(event)
        self._wake.set()

    def _drop_one(self) -> None:
        queue = self._queue
        for i, queued in enumerate(queue):
            if queued.name == SAMPLE:
                del queue[i]
                break
        else:
            queue.popleft()
        self.dropped += 1

    def end(self, reason: str) -> None:
        """Deliver what is queued, then an `end` event, then `FeedEnded`."""
        if self._ended is None:
            self._queue.append(FeedEvent(END, {"reason": reason}))
            self._ended = reason
            self._wake.set()

    async def next(self, timeout: float) -> FeedEvent | None:
        """The next event, or None after `timeout` seconds without one (time for a heartbeat)."""
        if not self._queue:
            if self._ended is not None:
                raise FeedEnded(self._ended)
            with anyio.move_on_after(timeout):
                await self._wake.wait()
            if not self._queue:
                if self._ended is not None:
                    raise FeedEnded(self._ended)
                self._wake = anyio.Event()
                return None
        event = self._queue.popleft()
        if not self._queue:
            self._wake = anyio.Event()
        return self._with_dropped(event)

    def _with_dropped(self, event: FeedEvent) -> FeedEvent:
        if self.dropped == self._told:
            return event
        self._told = self.dropped
        return FeedEvent(event.name, {**event.data, "dropped": self.dropped})

    def next_nowait(self) -> FeedEvent | None:
        """The next queued event, or None (for in-process watchers such as tests and tools)."""
        return self._with_dropped(self._queue.popleft()) if self._queue else None

    def poke(self) -> None:
        """Wake a pending `next` (which returns None): its owner has something else to do."""
        self._wake.set()

    @property
    def interval(self) -> float:
        return self._hub.interval

    def close(self) -> None:
        """The watcher went away (or its feed ended): stop queueing for it."""
        self._ended = self._ended or "closed"
        self._hub.unsubscribe(self)


Spawn = Callable[..., None]
Sample = Callable[[float], Mapping[str, Any]]
Relay = Callable[[str, Mapping[str, Any]], None]
# The state changes: the events another worker may hand in (never a sample, hello or end).
RELAYED = frozenset({"reload", "health", "agent_state", "scale", "replicas", "rollout"})


class LiveHub:
    """The gateway's live feed: `publish` state changes, `subscribe` watchers, sample while watched."""

    def __init__(self, sample: Sample | None = None, *, interval: float = 1.0) -> None:
        self._feeds: set[LiveFeed] = set()
        self._sample = sample
        self.interval = interval
        self._spawn: Spawn | None = None
        self._sampling = False
        self._seq = 0
        self._relay: Relay | None = None
        self._worker = 0

    def attach(self, spawn: Spawn) -> None:
        """Where the sampler task runs (the gateway's `_spawn`, once it has a task group)."""
        self._spawn = spawn

    @property
    def watchers(self) -> int:
        return len(self._feeds)

    def subscribe(self, events: frozenset[str] | None = None) -> LiveFeed:
        feed = LiveFeed(self, events)
        self._feeds.add(feed)
        if feed.wants(SAMPLE) and not self._sampling and self._sample is not None and self._spawn is not None:
            self._sampling = True
            self._spawn(self._run_sampler)
        return feed

    def unsubscribe(self, feed: LiveFeed) -> None:
        self._feeds.discard(feed)

    def relay_to(self, send: Relay, worker: int) -> None:
        """In a worker of `run --workers N`: pass every state change on to the other workers
        (runtime/observe/relay.py), each marked with this worker's index."""
        self._relay = send
        self._worker = worker

    def publish(self, event: str, data: Mapping[str, Any]) -> None:
        """A state change, to every watcher (the `Publish` of runtime/api.py)."""
        if self._relay is not None:
            # The time it happened, not the time a peer receives it.
            data = {"time": round(time.time(), 3), **data, "worker": self._worker}
            self._relay(event, data)
        if self._feeds:
            self._fan_out(event, data)

    def deliver(self, event: str, data: Mapping[str, Any]) -> None:
        """Another worker's state change, to this worker's watchers (not relayed again)."""
        if self._feeds and event in RELAYED:
            self._fan_out(event, data)

    def _fan_out(self, event: str, data: Mapping[str, Any]) -> None:
        self._seq += 1
        stamped = FeedEvent(event, {"seq": self._seq, "time": round(time.time(), 3), **data})
        for feed in list(self._feeds):
            feed.push(stamped)

    def end_all(self, reason: str) -> None:
        for feed in list(self._feeds):
            feed.end(reason)
        self._feeds.clear()

    async def _run_sampler(self) -> None:
        assert self._sample is not None
        try:
            next_at = time.monotonic()
            while any(feed.wants(SAMPLE) for feed in self._feeds):
                try:
                    data = self._sample(time.monotonic())
                except Exception:
                    _log.exception("live feed: sampling failed")
                else:
                    self._fan_out(SAMPLE, data)
                next_at += self.interval
                await anyio.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            self._sampling = False
