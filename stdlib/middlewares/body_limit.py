"""`body-limit`: refuse request bodies larger than `max_body_bytes` with 413.

```hcl
middlewares "limit-body" {
  type           = "body-limit"
  max_body_bytes = 1048576      # or "1MiB", "10MB"
}
```

A request whose `Content-Length` is over the limit is refused before a byte of its body is read
and never reaches the service. A body without a length (chunked, or HTTP/2 without
content-length) streams through untouched until it crosses the limit; at that point the stream
raises `PayloadTooLarge` in whoever is reading it (the proxy sending it upstream), so the
upstream sees an aborted request and the client gets 413. Nothing is buffered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ...runtime.api import BodyStream, Handler, Request, Response
from ...runtime.errors import PayloadTooLarge
from ..base import MiddlewareKind
from ..registry import register
from .schemas.body_limit import BodyLimitConfig

__all__ = ["BodyLimit", "BodyLimitConfig", "LimitedBody"]


class LimitedBody:
    """A request body that raises `PayloadTooLarge` as soon as more than `limit` bytes went by."""

    def __init__(self, source: BodyStream, limit: int) -> None:
        self._source = source
        self.limit = limit
        self.seen = 0
        self.exceeded = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self.exceeded:
            raise PayloadTooLarge(self.message())
        chunk = await self._source.__anext__()
        self.seen += len(chunk)
        if self.seen > self.limit:
            self.exceeded = True
            await self._source.aclose()
            raise PayloadTooLarge(self.message())
        return chunk

    async def aclose(self) -> None:
        await self._source.aclose()

    def message(self) -> str:
        return f"request body larger than {self.limit} bytes"


@register("middleware", "body-limit")
class BodyLimit(MiddlewareKind[BodyLimitConfig]):
    async def __call__(self, request: Request, next: Handler) -> Response:
        limit = self.config.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise PayloadTooLarge(f"request body of {request.content_length} bytes is larger than {limit}")
        body = LimitedBody(request.body, limit)
        request.body = body
        try:
            response = await next(request)
        except PayloadTooLarge:
            raise
        except Exception as exc:
            # Whoever read the body may have wrapped our error (an aborted upstream request):
            # the cause the client must see is still the size.
            if body.exceeded:
                raise PayloadTooLarge(body.message()) from exc
            raise
        if body.exceeded:
            # The upstream answered although its request was cut short: the answer is the 413.
            await response.aclose()
            raise PayloadTooLarge(body.message())
        return response
