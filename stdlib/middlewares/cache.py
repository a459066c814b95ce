"""`cache`: a shared HTTP cache (RFC 9111) in memory or Redis, and an opt-in cache of LLM completions.

```hcl
middlewares "cache" {
  type            = "cache"
  max_bytes       = "256MiB"       # memory store bound: bodies, headers and keys all count
  max_object_size = "1MiB"         # larger responses pass through unstored
  # redis_url     = "redis://127.0.0.1:6379/0"   # share one cache between gateways instead
  # llm = true, llm_ttl = "1h", llm_scope = "key" | "header:X-User" | "jwt:sub" | "shared"
}
```

**GET and HEAD** follow RFC 9111 as a shared cache. A response is stored when its status is
understood (200, 203, 204, 300-303, 307, 308, 400, 403, 404, 405, 410, 414, 451, 501) and it
carries explicit freshness (`s-maxage`, `max-age`, `Expires`, `public`) or is heuristically
cacheable with a `Last-Modified` (10% of its age, at most `heuristic_max_age`). Never stored:
`no-store` (either side), `private`, `Vary: *`, a `Set-Cookie`, a body over `max_object_size`,
a request with `Range`, and a response to a request with `Authorization` unless it is `public`,
`s-maxage` or `must-revalidate` (§3.5). `Vary` keys variants by the named request fields.
A hit carries `Age` and `X-Cache: HIT`; anything fetched from the upstream `X-Cache: MISS`.

A stale entry with an `ETag` or `Last-Modified` is revalidated with `If-None-Match` /
`If-Modified-Since`; a 304 refreshes the stored headers and the entry is served
(`X-Cache: REVALIDATED`), anything else replaces it. Request directives are honoured:
`no-cache` revalidates, `no-store` bypasses, `max-age`, `min-fresh` and `max-stale` bound the
age, and `only-if-cached` answers 504 when nothing fits. `must-revalidate`, `proxy-revalidate`,
`s-maxage` and `no-cache` responses are never served stale. A fresh hit answers the client's own
`If-None-Match` / `If-Modified-Since` with 304. A successful POST, PUT, PATCH or DELETE
invalidates the URL (§4.4).

**Completions** (`llm = true`): a POST to `.../chat/completions` (OpenAI) or `.../messages`
(Anthropic) with `temperature` 0 (or any, with `llm_sampled = true`) is cached for `llm_ttl`,
keyed by its body in canonical JSON form, the model and the caller's scope (by default its API
key, hashed: tenants never share entries; a request without the identity is not cached).
Requests over `llm_max_request_bytes` are proxied uncached. A streamed completion goes to the
client event by event as it arrives and is stored only if it ended with its API's final event
(`[DONE]`, `message_stop`); a hit replays it as a stream with the same event boundaries.

**Stores.** In memory: an LRU bounded by `max_bytes`, kept across a reload that keeps the node
(a changed node starts empty). With `redis_url`: entries are Redis strings with a TTL, shared by
every gateway; while Redis is unreachable requests are proxied uncached (it is asked again
after `retry_interval`), never failed. Entries are written whole once complete, so a reader
never sees a partial one; concurrent misses for one key each go to the upstream.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from ...runtime.api import Handler, Headers, Request, Response
from ...runtime.errors import GatewayTimeout
from ..base import BuildContext, MiddlewareKind
from ..cache.entry import Entry, VaryRecord, make_entry
from ..cache.freshness import parse_cache_control, storable
from ..cache.keys import resource_key, variant_key, vary_names
from ..cache.llm import (
    canonical_body,
    chained,
    completion_api,
    completion_key,
    deterministic,
    read_up_to,
    scope_of,
    stream_finished,
)
from ..cache.serve import freshened, serve, usable, validators
from ..cache.store import MemoryStore, RedisStore, Store
from ..cache.tee import TeeBody, declared_length
from ..llm.sse import split_events
from ..registry import register
from .schemas.cache import CacheConfig

__all__ = ["Cache", "CacheConfig", "CacheState"]

HIT, MISS, REVALIDATED = b"HIT", b"MISS", b"REVALIDATED"
_RECORD_TTL = 7 * 86400.0
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Conditional fields of the client replaced by the cache's own when it revalidates.
_CONDITIONALS = (b"if-none-match", b"if-modified-since", b"if-match", b"if-unmodified-since", b"if-range")


@dataclass(eq=False)
class CacheState:
    """The node's store and counters: kept across reloads while the node is unchanged."""

    store: Store
    hits: int = 0
    misses: int = 0
    revalidated: int = 0
    stored: int = 0

    def statistics(self) -> dict[str, int]:
        counts = {"hits": self.hits, "misses": self.misses, "revalidated": self.revalidated}
        return counts | {"stored": self.stored} | self.store.statistics()


@register("middleware", "cache")
class Cache(MiddlewareKind[CacheConfig]):
    state: CacheState

    @classmethod
    def new_state(cls, config: CacheConfig, ctx: BuildContext) -> CacheState:
        if config.redis_url is None:
            return CacheState(MemoryStore(config.max_bytes, config.max_object_size))
        store = RedisStore(
            config.redis_url,
            timeout=config.redis_timeout,
            retry_interval=config.retry_interval,
            prefix=config.key_prefix,
            max_object_size=config.max_object_size,
            name=ctx.name,
            logger=ctx.logger,
        )
        return CacheState(store)

    @classmethod
    async def close_state(cls, state: CacheState) -> None:
        await state.store.aclose()

    def cache_statistics(self) -> dict[str, int]:
        """Read by the metrics when scraped (`a3s_gateway_cache_requests_total`)."""
        return self.state.statistics()

    async def __call__(self, request: Request, next: Handler) -> Response:
        method = request.method
        if method == "GET" or method == "HEAD":
            return await self._safe(request, next)
        if method == "POST" and self.config.llm and (api := completion_api(request.path)) is not None:
            return await self._completion(request, next, api)
        response = await next(request)
        if method in _UNSAFE and 200 <= response.status < 400:
            await self.state.store.delete(resource_key(request))  # §4.4: the URL's variants go
        return response

    # ------------------------------------------------------------------ GET / HEAD

    async def _safe(self, request: Request, next: Handler) -> Response:
        req_cc = parse_cache_control(request.headers.get_joined("cache-control"))
        if "no-store" in req_cc or "range" in request.headers:
            return self._missed(await next(request))
        now = self.ctx.clock.wall()
        resource = resource_key(request)
        record = await self.state.store.get(resource, now)
        if isinstance(record, VaryRecord):
            entry = await self.state.store.get(variant_key(resource, record, request.headers), now)
            if isinstance(entry, Entry) and (entry.shared_auth or "authorization" not in request.headers):
                age = entry.age(now)
                if usable(entry, age, req_cc):
                    self.state.hits += 1
                    return serve(request, entry, age, HIT)
                if validators(entry):
                    return await self._revalidate(request, next, entry, record, resource)
        if "only-if-cached" in req_cc:
            raise GatewayTimeout("no stored response satisfies only-if-cached")
        return await self._fetch(request, next, resource, record, req_cc, now)

    async def _fetch(
        self,
        request: Request,
        next: Handler,
        resource: str,
        record: object,
        req_cc: dict[str, str | None],
        request_time: float,
    ) -> Response:
        response = await next(request)
        if request.method == "GET":
            self._offer(request, response, resource, record, req_cc, request_time)
        return self._missed(response)

    def _offer(
        self,
        request: Request,
        response: Response,
        resource: str,
        record: object,
        req_cc: dict[str, str | None],
        request_time: float,
    ) -> None:
        """Store the response as it streams to the client, if RFC 9111 §3 allows it."""
        headers = response.headers
        resp_cc = parse_cache_control(headers.get_joined("cache-control"))
        vary = headers.get_joined("vary")
        allowed = storable(
            response.status,
            req_cc,
            resp_cc,
            authorized="authorization" in request.headers,
            has_expires="expires" in headers,
            vary=vary,
            sets_cookie="set-cookie" in headers,
        )
        if not allowed:
            return
        names = vary_names(vary)
        if not isinstance(record, VaryRecord) or record.names != names:
            record = VaryRecord(names, secrets.token_hex(8))
        stored = tuple(headers.raw)
        key = variant_key(resource, record, request.headers)

        async def complete(chunks: list[bytes]) -> None:
            now = self.ctx.clock.wall()
            entry = make_entry(
                response.status,
                stored,
                (b"".join(chunks),),
                request_time=request_time,
                response_time=now,
                heuristic_max=self.config.heuristic_max_age,
            )
            await self._put(resource, record, key, entry, now, self._ttl(entry))

        response.body = TeeBody(
            response.body, self.config.max_object_size, complete, declared_length(headers)
        )

    def _ttl(self, entry: Entry) -> float:
        """How long to keep an entry: while fresh, plus `keep_stale` when it can still be of use
        stale (revalidated through a validator, or served to a request's max-stale)."""
        ttl = entry.lifetime - entry.initial_age
        if validators(entry) or not entry.must_revalidate:
            ttl = max(ttl, 0.0) + self.config.keep_stale
        return ttl

    async def _put(
        self, resource: str, record: VaryRecord, key: str, entry: Entry, now: float, ttl: float
    ) -> None:
        if ttl <= 0:
            return
        store = self.state.store
        await store.put(key, entry, now, ttl)
        # The record outlives its variants: a short-lived one must not hide a long-lived one.
        await store.put(resource, record, now, max(ttl, self.config.keep_stale, _RECORD_TTL))
        self.state.stored += 1

    async def _revalidate(
        self, request: Request, next: Handler, entry: Entry, record: VaryRecord, resource: str
    ) -> Response:
        """§4.3: ask the upstream whether the stored response is still good."""
        original = request.headers
        conditional = Headers([(k, v) for k, v in original.raw if k not in _CONDITIONALS])
        etag, modified = entry.header(b"etag"), entry.header(b"last-modified")
        if etag is not None:
            conditional.set("if-none-match", etag)
        if modified is not None:
            conditional.set("if-modified-since", modified)
        request.headers = conditional  # the client's own conditionals are answered here, not upstream
        request_time = self.ctx.clock.wall()
        response = await next(request)
        if response.status != 304:
            req_cc = parse_cache_control(original.get_joined("cache-control"))
            if request.method == "GET":
                self._offer(request, response, resource, record, req_cc, request_time)
            return self._missed(response)
        await response.aclose()
        now = self.ctx.clock.wall()
        fresh = make_entry(
            entry.status,
            freshened(entry.headers, response.headers),
            entry.chunks,
            request_time=request_time,
            response_time=now,
            heuristic_max=self.config.heuristic_max_age,
        )
        await self._put(
            resource, record, variant_key(resource, record, original), fresh, now, self._ttl(fresh)
        )
        self.state.revalidated += 1
        return serve(request, fresh, fresh.age(now), REVALIDATED, original)

    def _missed(self, response: Response) -> Response:
        self.state.misses += 1
        response.headers.set("x-cache", MISS)
        return response

    # ------------------------------------------------------------------ completions

    async def _completion(self, request: Request, next: Handler, api: str) -> Response:
        req_cc = parse_cache_control(request.headers.get_joined("cache-control"))
        body, whole = await read_up_to(request.body, self.config.llm_max_request_bytes)
        request.body = chained(body, None if whole else request.body)
        scope = scope_of(request, self.config.llm_scope)
        canonical = canonical_body(b"".join(body)) if whole and scope is not None else None
        if canonical is None or not (self.config.llm_sampled or deterministic(canonical[1])):
            return await next(request)
        text, parsed = canonical
        key = completion_key(api, request, scope or "", text, parsed)
        now = self.ctx.clock.wall()
        if "no-cache" not in req_cc and "no-store" not in req_cc:
            entry = await self.state.store.get(key, now)
            if isinstance(entry, Entry):
                self.state.hits += 1
                return serve(request, entry, entry.age(now), HIT)
        response = await next(request)
        if "no-store" not in req_cc:
            self._offer_completion(api, key, response, now)
        return self._missed(response)

    def _offer_completion(self, api: str, key: str, response: Response, request_time: float) -> None:
        headers = response.headers
        resp_cc = parse_cache_control(headers.get_joined("cache-control"))
        if response.status != 200 or "no-store" in resp_cc or "private" in resp_cc or "set-cookie" in headers:
            return
        streamed = (headers.get("content-type") or "").startswith("text/event-stream")
        stored = tuple(headers.raw)

        async def complete(chunks: list[bytes]) -> None:
            pieces = _events(b"".join(chunks)) if streamed else [b"".join(chunks)]
            if streamed and not stream_finished(api, pieces):
                return
            now = self.ctx.clock.wall()
            entry = make_entry(
                200,
                stored,
                tuple(pieces),
                request_time=request_time,
                response_time=now,
                heuristic_max=0.0,
                lifetime=self.config.llm_ttl,
            )
            await self.state.store.put(key, entry, now, self.config.llm_ttl)
            self.state.stored += 1

        response.body = TeeBody(
            response.body, self.config.max_object_size, complete, declared_length(headers)
        )


def _events(data: bytes) -> list[bytes]:
    """A stored stream cut after each event, to be replayed one by one (a trailing partial event
    is kept as the last piece, so that `stream_finished` sees the stream did not end)."""
    events, tail = split_events(data)
    return [*events, tail] if tail else events
