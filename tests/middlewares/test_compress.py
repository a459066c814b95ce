"""compress: Accept-Encoding negotiation, four codings, per-chunk flushing for SSE, and the skips."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import brotli
import pytest
import zstandard
from pydantic import ValidationError

from a3s_gateway.runtime.api import BodyStream, Headers, Request, Response, iter_body
from a3s_gateway.stdlib import registry
from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.middlewares.compress import Compress, CompressConfig, choose_encoding

TEXT = b"The quick brown fox jumps over the lazy dog. " * 100


def build(**options: Any) -> Compress:
    ctx = BuildContext(node_id="middleware:compress", name="compress")
    config = CompressConfig.model_validate(options)
    return Compress(config, Compress.new_state(config, ctx), ctx)


def req(accept: str | None = "gzip, deflate, br, zstd", method: str = "GET") -> Request:
    headers = [("accept-encoding", accept)] if accept is not None else []
    return Request(method, "/", Headers.from_pairs(headers))


def upstream(
    body: bytes = TEXT, status: int = 200, content_type: str = "text/plain", length: bool = True, **extra: str
) -> Callable[[Request], Any]:
    async def handler(request: Request) -> Response:
        headers = Headers.from_pairs(
            [("content-type", content_type), *[(k.replace("_", "-"), v) for k, v in extra.items()]]
        )
        if length:
            headers.set("content-length", str(len(body)))
        return Response(status, headers, iter_body(body))

    return handler


async def read(body: BodyStream) -> bytes:
    return b"".join([chunk async for chunk in body])


DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "br": brotli.decompress,
    "zstd": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,
}


def test_registered_without_required_keys() -> None:
    kind = registry.lookup("middleware", "compress")
    assert kind is not None and kind.impl is Compress
    assert CompressConfig.model_validate({}).algorithms == ("br", "zstd", "gzip", "deflate")


@pytest.mark.parametrize(
    "options", [{"algorithms": ["lz4"]}, {"algorithms": []}, {"algorithms": ["br", "br"]}, {"gzip_level": 10}]
)
def test_bad_config_is_a_validation_error(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CompressConfig.model_validate(options)


OFFERED = ("br", "zstd", "gzip", "deflate")


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        ("gzip, deflate, br, zstd", "br"),
        ("gzip, deflate", "gzip"),
        ("deflate, gzip", "gzip"),
        ("zstd, gzip", "zstd"),
        ("gzip;q=1.0, br;q=0.5", "gzip"),
        ("br;q=0, gzip", "gzip"),
        ("BR;Q=0.9, GZip;q=0.8", "br"),
        ("*", "br"),
        ("*;q=0.5, gzip", "gzip"),
        ("*;q=0", None),
        ("br;q=0, gzip;q=0, zstd;q=0, deflate;q=0", None),
        ("identity", None),
        ("gzip;q=0.5, identity", None),
        ("gzip, identity;q=0.5", "gzip"),
        ("", None),
        (None, None),
        ("compress, x-gzip", None),
        ("gzip;q=bogus, deflate", "deflate"),
    ],
)
def test_choose_encoding_follows_q_values(accept: str | None, chosen: str | None) -> None:
    assert choose_encoding(accept, OFFERED) == chosen


def test_configured_order_breaks_ties() -> None:
    assert choose_encoding("br, gzip", ("gzip", "br")) == "gzip"
    assert choose_encoding("br", ("gzip",)) is None


@pytest.mark.anyio
@pytest.mark.parametrize("coding", OFFERED)
async def test_each_coding_round_trips_and_fixes_the_headers(coding: str) -> None:
    handler = upstream(etag='"v1"', accept_ranges="bytes", vary="Origin")
    response = await build()(req(coding), handler)
    assert response.headers.get("content-encoding") == coding
    assert "content-length" not in response.headers and "accept-ranges" not in response.headers
    assert response.headers.get("vary") == "Origin, Accept-Encoding"
    assert response.headers.get("etag") == 'W/"v1"'
    data = await read(response.body)
    assert len(data) < len(TEXT) and DECODERS[coding](data) == TEXT


class Incremental:
    """A decoder fed chunk by chunk, as a browser's would be."""

    def __init__(self, coding: str) -> None:
        if coding == "br":
            self.feed: Callable[[bytes], bytes] = brotli.Decompressor().process
        elif coding == "zstd":
            self.feed = zstandard.ZstdDecompressor().decompressobj().decompress
        else:
            self.feed = zlib.decompressobj(
                16 + zlib.MAX_WBITS if coding == "gzip" else zlib.MAX_WBITS
            ).decompress


class Stream:
    """An SSE body that sends its next event only after the client has decoded the previous one."""

    def __init__(self, events: list[bytes]) -> None:
        self.events = events
        self.sent = 0
        self.decoded = anyio.Event()
        self.closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self.sent == len(self.events):
            raise StopAsyncIteration
        if self.sent:
            await self.decoded.wait()  # a buffering middleware would deadlock here
            self.decoded = anyio.Event()
        self.sent += 1
        return self.events[self.sent - 1]

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.anyio
@pytest.mark.parametrize("coding", OFFERED)
async def test_sse_chunks_are_flushed_one_by_one(coding: str) -> None:
    events = [b'data: {"token": "%d"}\n\n' % i for i in range(5)]
    stream = Stream(events)

    async def sse(request: Request) -> Response:
        return Response(200, Headers.from_pairs([("content-type", "text/event-stream")]), stream)

    response = await build()(req(coding), sse)
    assert response.headers.get("content-encoding") == coding
    decoder = Incremental(coding)
    received = b""
    with anyio.fail_after(5):
        async for chunk in response.body:
            received += decoder.feed(chunk)
            assert received == b"".join(events[: stream.sent])  # everything sent so far is readable
            stream.decoded.set()
    assert received == b"".join(events)


@pytest.mark.anyio
async def test_closing_the_compressed_body_closes_the_upstream() -> None:
    stream = Stream([b"data: 1\n\n", b"data: 2\n\n"])

    async def sse(request: Request) -> Response:
        return Response(200, Headers.from_pairs([("content-type", "text/event-stream")]), stream)

    response = await build()(req("gzip"), sse)
    await response.body.__anext__()
    await response.aclose()
    assert stream.closed


SKIPPED: list[tuple[str, Callable[[Request], Any], Request]] = [
    ("head", upstream(), req(method="HEAD")),
    ("204", upstream(b"", status=204, length=False), req()),
    ("304", upstream(b"", status=304, length=False), req()),
    ("206", upstream(status=206, content_range="bytes 0-99/200"), req()),
    ("content-range", upstream(content_range="bytes 0-99/200"), req()),
    ("already-encoded", upstream(content_encoding="gzip"), req()),
    ("no-transform", upstream(cache_control="public, no-transform"), req()),
    ("small", upstream(b"tiny"), req()),
    ("excluded-exact", upstream(content_type="image/png"), req()),
    ("excluded-prefix", upstream(content_type="video/mp4; codecs=avc1"), req()),
    ("grpc", upstream(content_type="application/grpc+proto"), req()),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "handler", "request_"), SKIPPED, ids=[s[0] for s in SKIPPED])
async def test_responses_left_alone(name: str, handler: Callable[[Request], Any], request_: Request) -> None:
    response = await build()(request_, handler)
    assert response.headers.get("content-encoding") in (None, "gzip")
    assert "accept-encoding" not in (response.headers.get("vary") or "").lower()
    if name not in ("204", "304"):
        assert response.headers.get("content-length") is not None


@pytest.mark.anyio
async def test_no_acceptable_coding_still_varies() -> None:
    response = await build()(req(None), upstream())
    assert response.headers.get("content-encoding") is None
    assert response.headers.get("vary") == "Accept-Encoding"
    assert await read(response.body) == TEXT


@pytest.mark.anyio
async def test_unknown_length_is_compressed_and_min_length_is_configurable() -> None:
    response = await build()(req("gzip"), upstream(b"tiny", length=False))
    assert response.headers.get("content-encoding") == "gzip"
    assert gzip.decompress(await read(response.body)) == b"tiny"
    response = await build(min_length=0)(req("gzip"), upstream(b"tiny"))
    assert response.headers.get("content-encoding") == "gzip"


@pytest.mark.anyio
async def test_excluded_content_types_are_configurable() -> None:
    response = await build(excluded_content_types=["text/*"])(req("gzip"), upstream())
    assert response.headers.get("content-encoding") is None
    response = await build(excluded_content_types=[])(req("gzip"), upstream(content_type="image/png"))
    assert response.headers.get("content-encoding") == "gzip"
