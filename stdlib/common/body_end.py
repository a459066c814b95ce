"""Running something once when a response body is over: read to its end, failed or closed.

A kind that holds something for the length of a response (a replica's slot, a queue's place)
gives it back here. `when_body_ends` registers on the body when it takes end callbacks (the
upstream exchange does, runtime/body_end.py: no extra frame per chunk), and wraps it otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

from ...runtime.api import BodyStream

__all__ = ["OnEnd", "when_body_ends"]


def when_body_ends(body: BodyStream, done: Callable[[], None]) -> BodyStream:
    """`body`, arranged so that `done()` runs exactly once when it is over."""
    add: Callable[[Callable[[BaseException | None], None]], None] | None = getattr(
        body, "add_end_callback", None
    )
    if add is None:
        return OnEnd(body, done)
    add(lambda _error: done())
    return body


class OnEnd:
    """A body that calls `done()` once when it ends, fails or is closed early."""

    __slots__ = ("_body", "_done")

    def __init__(self, body: BodyStream, done: Callable[[], None]) -> None:
        self._body = body
        self._done: Callable[[], None] | None = done

    def __aiter__(self) -> OnEnd:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._body.__anext__()
        except BaseException:
            self._finish()
            raise

    async def aclose(self) -> None:
        self._finish()
        await self._body.aclose()

    def _finish(self) -> None:
        done, self._done = self._done, None
        if done is not None:
            done()
