"""A response body that goes to the client as it arrives while a copy is kept for the cache.

Each chunk is handed on the moment the upstream produced it (a token stream is never held
back); the copy is stored only when the upstream body ended cleanly (or, with a Content-Length,
reached it: then before the last chunk leaves, so the client that read it all finds it stored). A body that fails midway
(the upstream cut, the client left and the body was closed early) or outgrows the size limit
is never stored: the copy is dropped and the stream goes on untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from ...runtime.api import BodyStream, Headers

__all__ = ["TeeBody", "declared_length"]


class TeeBody:
    def __init__(
        self,
        source: BodyStream,
        limit: int,
        on_complete: Callable[[list[bytes]], Awaitable[None]],
        length: int | None = None,
    ) -> None:
        self._source = source
        self._limit = limit
        self._on_complete = on_complete
        # The declared Content-Length: a body that reached it is complete, and is stored before
        # its last chunk goes out, so a client that has read it all finds it stored.
        self._length = length
        self._copy: list[bytes] | None = []
        self._size = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._source.__anext__()
        except StopAsyncIteration:
            copy, self._copy = self._copy, None
            if copy is not None:
                await self._on_complete(copy)
            raise
        except BaseException:
            self._copy = None
            raise
        if self._copy is not None:
            self._size += len(chunk)
            if self._size > self._limit:
                self._copy = None
            else:
                self._copy.append(chunk)
                if self._size == self._length:
                    copy, self._copy = self._copy, None
                    await self._on_complete(copy)
        return chunk

    async def aclose(self) -> None:
        self._copy = None
        await self._source.aclose()


def declared_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    return int(value) if value is not None and value.strip().isdigit() else None
