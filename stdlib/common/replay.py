"""A request body that can be read again: kept in memory up to a size while it streams.

The first reader gets each chunk as soon as it arrives (nothing waits for the whole body) while
a copy is kept. As long as the copy stayed under `max_bytes`, `stream()` hands out a new reader
that replays the kept chunks and then continues with the rest of the original stream, which may
not have been read at all (an attempt that failed to connect). Once the body grows past
`max_bytes` the copy is dropped and the body can no longer be replayed; the current reader goes
on streaming. Used by `retry`, and by anything else that must send one body twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ...runtime.api import BodyStream

__all__ = ["ReplayableBody"]


class ReplayableBody:
    def __init__(self, source: BodyStream, max_bytes: int) -> None:
        self._source = source
        self.max_bytes = max_bytes
        self._chunks: list[bytes] = []
        self._size = 0
        self._generation = 0
        # The whole body has been read from the source (and kept, unless it overflowed).
        self.complete = False
        # The body outgrew `max_bytes`: the copy is gone and it cannot be replayed.
        self.overflowed = False

    @property
    def replayable(self) -> bool:
        return not self.overflowed

    def stream(self) -> BodyStream:
        """A reader from the first byte. Earlier readers stop working (one attempt at a time)."""
        if self.overflowed:
            raise RuntimeError("body outgrew the replay buffer and cannot be read again")
        self._generation += 1
        return _Reader(self, self._generation)

    async def _next(self, position: int) -> bytes:
        if position < len(self._chunks):
            return self._chunks[position]
        if self.complete:
            raise StopAsyncIteration
        try:
            chunk = await self._source.__anext__()
        except StopAsyncIteration:
            self.complete = True
            raise
        if not self.overflowed:
            self._size += len(chunk)
            if self._size > self.max_bytes:
                self.overflowed = True
                self._chunks = []
            else:
                self._chunks.append(chunk)
        return chunk

    async def aclose(self) -> None:
        await self._source.aclose()


class _Reader:
    def __init__(self, owner: ReplayableBody, generation: int) -> None:
        self._owner = owner
        self._generation = generation
        self._position = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._generation != self._owner._generation:
            raise RuntimeError("a newer reader replaced this one")
        chunk = await self._owner._next(self._position)
        self._position += 1
        return chunk

    async def aclose(self) -> None:
        # A failed attempt closing its body must not close the source a retry still needs.
        if self._owner.overflowed:
            await self._owner.aclose()
