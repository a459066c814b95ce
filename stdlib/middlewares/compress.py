"""`compress`: compress responses with brotli, zstd, gzip or deflate, chunk by chunk.

```hcl
middlewares "compress" {
  type = "compress"
  # algorithms             = ["br", "zstd", "gzip", "deflate"]   # preference at equal q
  # min_length             = 1024                                # bytes, or "1KiB"
  # excluded_content_types = ["image/png", "video/*", ...]
  # gzip_level = 6, brotli_quality = 4, zstd_level = 3
}
```

The coding is chosen from the client's `Accept-Encoding` q-values (RFC 9110 §12.5.3): the highest
q wins, ties go to the order of `algorithms` (br, then zstd, gzip, deflate), `q=0` excludes a
coding and `*` stands for codings not listed. An explicit `identity` rated above every coding we
offer keeps the response as it is.

Streaming: every chunk from the upstream is compressed and flushed at once (zlib Z_SYNC_FLUSH,
brotli flush, zstd FLUSH_BLOCK), so a token streamed over SSE reaches the client as soon as it
was produced, compressed. Nothing is buffered.

Left alone: responses to HEAD; 1xx, 204, 206 and 304 responses and any with Content-Range;
responses already content-encoded; `Cache-Control: no-transform` (RFC 9110 §7.7); bodies whose
Content-Length is under `min_length`; content types matching `excluded_content_types` (an entry
ending in `*` is a prefix). A compressed response gets `Content-Encoding`, loses `Content-Length`
and `Accept-Ranges`, has a strong ETag weakened (RFC 9110 §8.8.3), and carries
`Vary: Accept-Encoding`, as does every response that could have been compressed.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable, Sequence

import brotli
import zstandard

from ...runtime.api import BodyStream, Handler, Headers, Request, Response
from ..base import MiddlewareKind
from ..registry import register
from .schemas.compress import CompressConfig

__all__ = ["Compress", "CompressConfig", "Compressor", "choose_encoding", "new_compressor"]


def choose_encoding(accept_encoding: str | None, offered: Sequence[str]) -> str | None:
    """The coding to use for this Accept-Encoding, from `offered` (in preference order), or None."""
    if not accept_encoding:
        return None
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, *params = (part.strip() for part in item.split(";"))
        if name:
            weights[name.lower()] = _qvalue(params)
    star = weights.get("*", 0.0)
    best, best_q = None, 0.0
    for coding in offered:
        q = weights.get(coding, star)
        if q > best_q:
            best, best_q = coding, q
    # An explicit identity preferred over every offered coding wins; an implicit one never competes.
    if best is not None and weights.get("identity", 0.0) > best_q:
        return None
    return best


def _qvalue(params: list[str]) -> float:
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                return min(1.0, max(0.0, float(value)))
            except ValueError:
                return 0.0
    return 1.0


class Compressor:
    """One streaming encoder: `chunk(data)` returns everything decodable so far; `finish()` the end."""

    def __init__(
        self, process: Callable[[bytes], bytes], flush: Callable[[], bytes], finish: Callable[[], bytes]
    ):
        self._process, self._flush, self._finish = process, flush, finish

    def chunk(self, data: bytes) -> bytes:
        return self._process(data) + self._flush()

    def finish(self) -> bytes:
        return self._finish()


def new_compressor(coding: str, config: CompressConfig) -> Compressor:
    if coding == "br":
        br = brotli.Compressor(quality=config.brotli_quality)
        return Compressor(br.process, br.flush, br.finish)
    if coding == "zstd":
        zs = zstandard.ZstdCompressor(level=config.zstd_level).compressobj()
        return Compressor(
            zs.compress,
            lambda: zs.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK),
            lambda: zs.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH),
        )
    # gzip: the gzip wrapper (wbits 16+); deflate: the zlib wrapper, as HTTP defines it (RFC 9110 §8.4.1.2).
    wbits = 16 + zlib.MAX_WBITS if coding == "gzip" else zlib.MAX_WBITS
    z = zlib.compressobj(config.gzip_level, zlib.DEFLATED, wbits)
    return Compressor(z.compress, lambda: z.flush(zlib.Z_SYNC_FLUSH), lambda: z.flush(zlib.Z_FINISH))


class CompressedBody:
    """The upstream body, each chunk compressed and flushed as it arrives."""

    def __init__(self, source: BodyStream, compressor: Compressor) -> None:
        self._source = source
        self._compressor = compressor
        self._done = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        while not self._done:
            try:
                chunk = await self._source.__anext__()
            except StopAsyncIteration:
                self._done = True
                tail = self._compressor.finish()
                if tail:
                    return tail
                break
            if chunk:
                return self._compressor.chunk(chunk)
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self._done = True
        await self._source.aclose()


@register("middleware", "compress")
class Compress(MiddlewareKind[CompressConfig]):
    async def __call__(self, request: Request, next: Handler) -> Response:
        response = await next(request)
        if request.method.upper() == "HEAD" or not self._compressible(response):
            return response
        _add_vary(response.headers)
        coding = choose_encoding(request.headers.get_joined("accept-encoding"), self.config.algorithms)
        if coding is None:
            return response
        headers = response.headers
        headers.set("content-encoding", coding)
        headers.remove("content-length")
        headers.remove("accept-ranges")
        etag = headers.get("etag")
        if etag and not etag.startswith("W/"):
            headers.set("etag", "W/" + etag)
        response.body = CompressedBody(response.body, new_compressor(coding, self.config))
        return response

    def _compressible(self, response: Response) -> bool:
        headers = response.headers
        if response.status < 200 or response.status in (204, 206, 304) or "content-range" in headers:
            return False
        if (headers.get("content-encoding") or "identity").strip().lower() != "identity":
            return False
        if "no-transform" in (headers.get_joined("cache-control") or "").lower():
            return False
        length = headers.get("content-length")
        if length is not None and length.strip().isdigit() and int(length) < self.config.min_length:
            return False
        return not self._excluded(headers.get("content-type"))

    def _excluded(self, content_type: str | None) -> bool:
        if not content_type:
            return False
        media = content_type.split(";", 1)[0].strip().lower()
        for pattern in self.config.excluded_content_types:
            if media == pattern or (pattern.endswith("*") and media.startswith(pattern[:-1])):
                return True
        return False


def _add_vary(headers: Headers) -> None:
    vary = headers.get_joined("vary") or ""
    present = {item.strip().lower() for item in vary.split(",")}
    if "accept-encoding" not in present and "*" not in present:
        headers.set("vary", f"{vary}, Accept-Encoding" if vary else "Accept-Encoding")
