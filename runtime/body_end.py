"""Knowing when a response body is over, with one wrapper however many parties ask.

The service holds a backend's in-flight count, the graph generation its request count, the
mirror its shadow, each until the response body is over: read to its end, failed, closed
early, or dropped. A wrapper per party would put a coroutine frame per party on every chunk
of every stream (and on every SSE event); instead `on_body_end` registers a callback on the
body when it can take one (`add_end_callback`: the upstream exchange, or a `WatchedBody`
already there), and wraps it once otherwise.

A body that takes end callbacks can also count the bytes it yields (`body_bytes`, None until
`on_counted_body_end` starts the count, so that nobody else pays for it): the access log reads
the response size there when its callback runs, instead of wrapping the body to count (a
coroutine frame per chunk, an exception hop at the end, a finalizer per request).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .api import BodyStream

__all__ = ["CountingBody", "EndCallback", "WatchedBody", "on_body_end", "on_counted_body_end"]

# Called once with None (ended or closed) or the error that ended the body.
EndCallback = Callable[[BaseException | None], None]


def on_body_end(body: BodyStream, callback: EndCallback) -> BodyStream:
    """`body`, arranged so that `callback(error)` runs exactly once when it is over."""
    add: Callable[[EndCallback], None] | None = getattr(body, "add_end_callback", None)
    if add is not None:
        add(callback)
        return body
    return WatchedBody(body, callback)


class CountingBody(BodyStream, Protocol):
    """A body that takes end callbacks and counts the bytes it yields (see the module docstring)."""

    body_bytes: int | None

    def add_end_callback(self, callback: EndCallback) -> None: ...


def on_counted_body_end(body: BodyStream, callback: EndCallback) -> CountingBody:
    """`body`, arranged as by `on_body_end` and counting the bytes it yields: the body itself
    when it does both (the upstream exchange, a `WatchedBody`), else a `WatchedBody` around it
    (a body of the gateway's own, or one a middleware or an LLM kind transformed)."""
    if hasattr(body, "body_bytes"):
        counting: CountingBody = body  # type: ignore[assignment]
        if counting.body_bytes is None:
            counting.body_bytes = 0
        counting.add_end_callback(callback)
        return counting
    watched = WatchedBody(body, callback)
    watched.body_bytes = 0
    return watched


def fire(callbacks: list[EndCallback] | None, error: BaseException | None) -> None:
    """Run `callbacks` in registration order (the caller has already taken them)."""
    if callbacks is not None:
        for callback in callbacks:
            callback(error)


class WatchedBody:
    """A response body that calls its end callbacks exactly once, when it is over.

    That is: at the end of the body (error None), when reading it fails (the error: an upstream
    cut, or the reading task cancelled because the client went away), when it is closed early,
    or, as a last resort, when it is garbage-collected unread.
    """

    __slots__ = ("_body", "_on_end", "body_bytes")

    def __init__(self, body: BodyStream, on_end: EndCallback) -> None:
        self._body = body
        self._on_end: list[EndCallback] | None = [on_end]
        self.body_bytes: int | None = None  # yielded so far, once counted (the module docstring)

    def add_end_callback(self, callback: EndCallback) -> None:
        if self._on_end is None:  # already over: the news is not withheld from late comers
            callback(None)
        else:
            self._on_end.append(callback)

    def __aiter__(self) -> WatchedBody:
        return self

    def ready(self) -> tuple[list[bytes], bool]:
        """The wrapped body's `ready()`, passed through (see connection.py `_with_ready_body`).

        The end of the body is still consumed through `__anext__`, so the callbacks run there."""
        ready = getattr(self._body, "ready", None)
        if ready is None:
            return [], False
        chunks, ended = ready()
        if self.body_bytes is not None and chunks:
            self.body_bytes += sum(map(len, chunks))
        return chunks, ended

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._body.__anext__()
        except StopAsyncIteration:
            self._end(None)
            raise
        except BaseException as exc:
            self._end(exc)
            raise
        if self.body_bytes is not None:
            self.body_bytes += len(chunk)
        return chunk

    async def aclose(self) -> None:
        self._end(None)
        await self._body.aclose()

    def _end(self, error: BaseException | None) -> None:
        callbacks, self._on_end = self._on_end, None
        fire(callbacks, error)

    def __del__(self) -> None:
        self._end(None)
