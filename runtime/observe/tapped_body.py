"""A response body passed on unchanged that sees each chunk and learns once when it is over.

The access log counts the bytes sent (`CountedBody`), the metrics count a server-sent event
stream's events and bytes (`EventStreamMeter`): both are this wrapper with their own `_seen`
(a chunk went by) and `_over` (the body ended, failed, was closed early or dropped). `ready()`
(the connection's fast path, connection.py) is passed through and its chunks are seen too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..api import BodyStream

__all__ = ["TappedBody"]


class TappedBody:
    __slots__ = ("_body", "_open")

    def __init__(self, body: BodyStream) -> None:
        self._body = body
        self._open = True

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    def ready(self) -> tuple[list[bytes], bool]:
        ready = getattr(self._body, "ready", None)
        chunks, ended = ready() if ready is not None else ([], False)
        if chunks:
            self._seen_all(chunks)
        return chunks, ended

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._body.__anext__()
        except BaseException:
            self._end()
            raise
        self._seen(chunk)
        return chunk

    async def aclose(self) -> None:
        self._end()
        await self._body.aclose()

    def _end(self) -> None:
        if self._open:
            self._open = False
            self._over()

    def __del__(self) -> None:
        self._end()

    def _seen(self, chunk: bytes) -> None:
        """A chunk went by."""

    def _seen_all(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self._seen(chunk)

    def _over(self) -> None:
        """The body is over (called once)."""
