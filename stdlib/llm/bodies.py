"""Bodies on the conversion path: whole JSON bodies read with a bound, and the streamed response
converted event by event.

`ConvertedStream` is the response body the client reads: each upstream chunk goes through the
SSE parser and the converter and whatever complete events it held leave at once, in one chunk;
a chunk that completes no event (half an event) yields nothing and the next one is read. No
event waits for a later one. When the upstream breaks off (a `GatewayError` from its body: the
connection closed mid-response, an idle timeout), the converter's error event in the client's
format is the last chunk, and the body ends cleanly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

from ...runtime.api import BodyStream, Request, empty_body, iter_body
from ...runtime.errors import GatewayError, PayloadTooLarge
from .sse import SseEvent, SseParser

__all__ = [
    "ConvertedStream",
    "EventConverter",
    "WholeBody",
    "read_body",
    "read_request_body",
    "set_request_body",
]


class EventConverter(Protocol):
    """What both directions' `StreamConverter` offer."""

    @property
    def done(self) -> bool: ...

    def feed(self, event: SseEvent) -> bytes: ...

    def end(self) -> bytes: ...

    def fail(self, message: str) -> bytes: ...


async def read_body(body: BodyStream, limit: int) -> bytes:
    """The whole of `body`; `PayloadTooLarge` past `limit` bytes (the rest is not read)."""
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in body:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"body larger than {limit} bytes")
            parts.append(chunk)
    finally:
        if size > limit:
            await body.aclose()
    return b"".join(parts)


async def read_request_body(request: Request, limit: int) -> bytes:
    """The request body in full; PayloadTooLarge past `limit` bytes (never reading beyond it, and
    at once when its Content-Length says so)."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body larger than {limit} bytes")
    if not request.has_body:
        return b""
    return await read_body(request.body, limit)


def set_request_body(request: Request, data: bytes) -> None:
    """Give `request` the body `data`, read in full (each sending reads its own), with its
    Content-Length: a body that came chunked goes up with its length."""
    if not data:
        request.body = empty_body()
        return
    request.body = iter_body(data)
    if request.content_length != len(data):
        request.content_length = len(data)
        request.headers.set("content-length", str(len(data)))


class WholeBody:
    """A converted JSON body, all in hand. `ready()` hands it over at once (as the upstream
    exchange does), so the connection writes the head and the body in one send."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def ready(self) -> tuple[list[bytes], bool]:
        data, self._data = self._data, b""
        return ([data] if data else []), True

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        data, self._data = self._data, b""
        if not data:
            raise StopAsyncIteration
        return data

    async def aclose(self) -> None:
        self._data = b""


class ConvertedStream:
    """The upstream's SSE body, converted to the client's events as each one completes.

    It takes the runtime's end-of-body callbacks itself (`add_end_callback`, as the upstream
    exchange does: see runtime/body_end.py), so nobody wraps it in one more frame per event.
    """

    __slots__ = ("_converter", "_finished", "_on_end", "_parser", "_source")

    def __init__(self, source: BodyStream, converter: EventConverter) -> None:
        self._source = source
        self._converter = converter
        self._parser = SseParser()
        self._finished = False
        self._on_end: list[Callable[[BaseException | None], None]] | None = []

    def add_end_callback(self, callback: Callable[[BaseException | None], None]) -> None:
        if self._on_end is None:
            callback(None)
        else:
            self._on_end.append(callback)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        converter = self._converter
        try:
            while not self._finished:
                try:
                    chunk = await self._source.__anext__()
                except StopAsyncIteration:
                    self._finished = True
                    out = converter.end()
                    if out:
                        return out
                    break
                except GatewayError as exc:
                    self._finished = True
                    return converter.fail(f"the upstream stream broke off: {exc.message}")
                events = self._parser.feed(chunk)
                if events:
                    out = b"".join([converter.feed(event) for event in events])
                    if out:
                        return out
        except BaseException as exc:  # cancelled (the client went away), or a bug: tell observers
            self._end(exc)
            raise
        self._end(None)
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self._finished = True
        self._end(None)
        await self._source.aclose()

    def _end(self, error: BaseException | None) -> None:
        callbacks, self._on_end = self._on_end, None
        for callback in callbacks or ():
            callback(error)

    def __del__(self) -> None:
        self._end(None)
