"""Traffic mirroring: copy a share of requests to a shadow service, fire-and-forget.

```hcl
service "llm" {
  load_balancer { servers = [{ url = "http://prod:8000" }] }
  mirror {
    service       = "llm-canary"
    percentage    = 5        # share of requests copied
    max_in_flight = 100      # shadow requests at once; excess is skipped and counted
    max_body      = "1MiB"   # larger request bodies are not mirrored
  }
}
```

The client only ever talks to the primary: the shadow's response is read and thrown away, and a
slow, failing or unreachable shadow never delays, changes or fails the client's exchange.

Three pieces live here, each usable on its own:

- `MirrorPolicy` decides which requests are copied (`percentage`, drawn from an injectable
  `random.Random`, so a seeded test is deterministic), bounds the shadow requests in flight, and
  counts what it mirrored, skipped and abandoned.
- `tee(body, max_body)` splits a request body stream into the primary's and the shadow's. The
  primary reads the original stream at its own pace; every chunk it reads is also handed to the
  shadow through a buffer that never blocks. If the body grows past `max_body` (or the shadow
  has more than `max_body` bytes it has not read yet), the shadow copy is abandoned: its reader
  gets `ShadowAbandoned` and must drop its request, while the primary carries on untouched.
  Memory per mirrored request is therefore at most `max_body`.
- `ShadowAbandoned`: raised from the shadow body, so a shadow request never sends a truncated
  body as if it were complete.

When the primary exchange ends without reading its whole body (an early answer such as 413, or
an error), call `abandon_shadow(primary)`: nothing will read the rest, so the shadow must not wait
for it.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ...compiler.schema import MirrorConfig
from ...runtime.api import BodyStream

__all__ = ["MirrorPolicy", "MirrorStats", "ShadowAbandoned", "abandon_shadow", "tee"]


class ShadowAbandoned(Exception):
    """The shadow copy of a body was given up (too large, shadow too slow, or primary aborted)."""


@dataclass(slots=True)
class MirrorStats:
    mirrored: int = 0
    skipped_percentage: int = 0
    skipped_busy: int = 0
    skipped_body: int = 0
    abandoned: int = 0
    failed: int = 0


@dataclass(slots=True)
class MirrorPolicy:
    """Which requests to mirror, and how many shadow requests may be in flight."""

    config: MirrorConfig
    rng: random.Random = field(default_factory=random.Random)
    in_flight: int = 0
    stats: MirrorStats = field(default_factory=MirrorStats)

    def selected(self) -> bool:
        """Whether this request falls in the mirrored `percentage` (one draw per request)."""
        pct = self.config.percentage
        chosen = pct >= 100 or (pct > 0 and self.rng.random() * 100 < pct)
        if not chosen:
            self.stats.skipped_percentage += 1
        return chosen

    def try_acquire(self, content_length: int | None = None) -> bool:
        """Take a shadow slot for a selected request; False (and counted) when it must be skipped."""
        if content_length is not None and content_length > self.config.max_body:
            self.stats.skipped_body += 1
            return False
        if self.in_flight >= self.config.max_in_flight:
            self.stats.skipped_busy += 1
            return False
        self.in_flight += 1
        self.stats.mirrored += 1
        return True

    def release(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)


class _Abandon:
    """The marker sent down the shadow channel when the copy is given up."""


_ABANDON = _Abandon()


class _Tee:
    def __init__(self, source: BodyStream, max_body: int) -> None:
        self.source = source
        self.max_body = max_body
        self.copied = 0
        self.abandoned = False
        self.send: MemoryObjectSendStream[bytes | _Abandon]
        self.receive: MemoryObjectReceiveStream[bytes | _Abandon]
        # Unbounded in items; bounded in bytes by max_body through `copied` (never blocks the primary).
        self.send, self.receive = anyio.create_memory_object_stream[bytes | _Abandon](math.inf)

    def offer(self, chunk: bytes) -> None:
        if self.abandoned:
            return
        self.copied += len(chunk)
        if self.copied > self.max_body:
            self.abandon()
            return
        try:
            self.send.send_nowait(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.abandoned = True  # the shadow side closed its end: nobody is listening

    def abandon(self) -> None:
        if not self.abandoned:
            self.abandoned = True
            try:
                self.send.send_nowait(_ABANDON)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass
            self.send.close()

    def finish(self) -> None:
        if not self.abandoned:
            self.send.close()


class _PrimaryBody:
    """The original body, passed through; each chunk is also offered to the shadow."""

    def __init__(self, tee: _Tee) -> None:
        self._tee = tee
        self._done = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        try:
            chunk = await self._tee.source.__anext__()
        except StopAsyncIteration:
            self._done = True
            self._tee.finish()
            raise
        except BaseException:
            self._done = True
            self._tee.abandon()
            raise
        self._tee.offer(chunk)
        return chunk

    async def aclose(self) -> None:
        if not self._done:
            self._done = True
            self._tee.abandon()
        await self._tee.source.aclose()


class _ShadowBody:
    """The copy: the same chunks, or `ShadowAbandoned` when the copy was given up."""

    def __init__(self, tee: _Tee) -> None:
        self._tee = tee

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            item = await self._tee.receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None
        if isinstance(item, _Abandon):
            raise ShadowAbandoned("the shadow copy of the request body was abandoned")
        return item

    async def aclose(self) -> None:
        self._tee.receive.close()


def tee(body: BodyStream, max_body: int) -> tuple[BodyStream, BodyStream]:
    """Split `body` into (primary, shadow). Read the primary as usual; the shadow follows it.

    The shadow only ever sees chunks the primary has already read, so it can never get ahead of
    (or delay) the primary. Closing the shadow early is harmless; closing the primary early
    abandons the shadow.
    """
    state = _Tee(body, max_body)
    return _PrimaryBody(state), _ShadowBody(state)


def abandon_shadow(primary: BodyStream) -> None:
    """The primary exchange is over: give up the shadow copy unless the body was read to its end."""
    if isinstance(primary, _PrimaryBody) and not primary._done:
        primary._tee.abandon()
