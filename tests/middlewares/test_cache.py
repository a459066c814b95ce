"""cache: RFC 9111 semantics on a manual clock, the stores, and completion caching.

The middleware runs in front of a counting upstream handler (its `next`), on a `ManualClock`,
so freshness is checked without sleeping. End-to-end tests through a running gateway, with
httpx, curl, the openai SDK and a real redis-server, are in test_cache_e2e.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from email.utils import formatdate
from typing import Any

import anyio
import pytest
from pydantic import ValidationError

from a3s_gateway.runtime.api import BodyStream, Headers, Request, Response, iter_body
from a3s_gateway.runtime.clock import ManualClock
from a3s_gateway.runtime.errors import BadGateway, GatewayTimeout
from a3s_gateway.stdlib import registry
from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.cache.entry import Entry, VaryRecord, decode, encode, make_entry
from a3s_gateway.stdlib.cache.llm import completion_api, stream_finished
from a3s_gateway.stdlib.llm.sse import split_events
from a3s_gateway.stdlib.middlewares.cache import Cache, CacheConfig
from a3s_gateway.stdlib.middlewares.compress import Compress, CompressConfig

pytestmark = pytest.mark.anyio

Reply = tuple[int, list[tuple[str, str]], bytes]


class Upstream:
    """The next handler: answers from `reply(request)` and counts the calls."""

    def __init__(self, reply: Callable[[Request], Reply]) -> None:
        self.reply = reply
        self.requests: list[Request] = []

    @property
    def calls(self) -> int:
        return len(self.requests)

    async def __call__(self, request: Request) -> Response:
        self.requests.append(request)
        status, headers, body = self.reply(request)
        out = Headers.from_pairs(headers)
        out.set("content-length", str(len(body)))
        return Response(status, out, iter_body(body))


def fixed(status: int = 200, body: bytes = b"hello", **headers: str) -> Upstream:
    pairs = [(k.replace("_", "-"), v) for k, v in headers.items()]
    return Upstream(lambda request: (status, pairs, body))


def build(clock: ManualClock | None = None, **options: Any) -> Cache:
    ctx = BuildContext(node_id="middleware:cache", name="cache", clock=clock or ManualClock())
    config = CacheConfig.model_validate(options)
    return Cache(config, Cache.new_state(config, ctx), ctx)


def get(target: str = "/r", method: str = "GET", **headers: str) -> Request:
    pairs = [("host", "gw.test"), *((k.replace("_", "-"), v) for k, v in headers.items())]
    return Request(method, target, Headers.from_pairs(pairs))


async def read(body: BodyStream) -> bytes:
    return b"".join([chunk async for chunk in body])


async def fetch(mw: Cache, upstream: Upstream, request: Request | None = None) -> tuple[Response, bytes]:
    response = await mw(request or get(), upstream)
    return response, await read(response.body)


def date(clock: ManualClock, offset: float = 0) -> str:
    return formatdate(clock.wall() + offset, usegmt=True)


# --------------------------------------------------------------------------- config


def test_registered_and_validated() -> None:
    kind = registry.lookup("middleware", "cache")
    assert kind is not None and kind.impl is Cache
    config = CacheConfig.model_validate({"max_bytes": "1MiB", "llm": True, "llm_scope": "header:X-User"})
    assert (config.max_bytes, config.max_object_size) == (1024 * 1024, 1024 * 1024)
    for bad in (
        {"llm_scope": "ip"},
        {"llm_scope": "header:"},
        {"redis_url": "http://r"},
        {"max_bytes": 100, "max_object_size": 1000},
        {"ttl": "1h"},
    ):
        with pytest.raises(ValidationError):
            CacheConfig.model_validate(bad)


# --------------------------------------------------------------------------- freshness


async def test_fresh_hit_carries_age_and_x_cache() -> None:
    clock = ManualClock()
    mw, upstream = build(clock), fixed(cache_control="max-age=60")
    first, body = await fetch(mw, upstream)
    assert first.headers.get("x-cache") == "MISS" and body == b"hello"
    clock.advance(25)
    second, body = await fetch(mw, upstream)
    assert (second.status, body, upstream.calls) == (200, b"hello", 1)
    assert second.headers.get("x-cache") == "HIT" and second.headers.get("age") == "25"
    clock.advance(40)
    third, _ = await fetch(mw, upstream)  # 65 s old: stale, and no validator to revalidate with
    assert third.headers.get("x-cache") == "MISS" and upstream.calls == 2


async def test_s_maxage_wins_over_max_age_and_expires_counts_from_date() -> None:
    clock = ManualClock()
    mw = build(clock)
    shared = fixed(cache_control="max-age=1, s-maxage=100")
    await fetch(mw, shared, get("/a"))
    clock.advance(50)
    assert (await fetch(mw, shared, get("/a")))[0].headers.get("x-cache") == "HIT"
    expiring = fixed(date=date(clock), expires=date(clock, 30))
    await fetch(mw, expiring, get("/b"))
    clock.advance(20)
    assert (await fetch(mw, expiring, get("/b")))[0].headers.get("x-cache") == "HIT"
    clock.advance(20)
    assert (await fetch(mw, expiring, get("/b")))[0].headers.get("x-cache") == "MISS"
    invalid = fixed(expires="0")  # an invalid Expires means already expired (§5.3)
    await fetch(mw, invalid, get("/c"))
    await fetch(mw, invalid, get("/c"))
    assert invalid.calls == 2


async def test_age_from_upstream_counts() -> None:
    clock = ManualClock()
    mw, upstream = build(clock), fixed(cache_control="max-age=60", age="50")
    await fetch(mw, upstream)
    clock.advance(5)
    hit, _ = await fetch(mw, upstream)
    assert hit.headers.get("age") == "55"
    clock.advance(10)
    assert (await fetch(mw, upstream))[0].headers.get("x-cache") == "MISS"


async def test_heuristic_freshness_from_last_modified() -> None:
    clock = ManualClock()
    mw = build(clock, heuristic_max_age="1h")
    # Modified 10 hours ago: 10% is one hour, which is also the cap.
    upstream = fixed(date=date(clock), last_modified=date(clock, -36000))
    await fetch(mw, upstream)
    clock.advance(3000)
    assert (await fetch(mw, upstream))[0].headers.get("x-cache") == "HIT"
    no_heuristic = build(clock, heuristic_max_age=0)
    await fetch(no_heuristic, upstream)
    hit_or_not, _ = await fetch(no_heuristic, upstream)
    # Stored (it has a validator) but never fresh: the second request is a conditional one.
    assert hit_or_not.headers.get("x-cache") == "MISS"
    assert upstream.requests[-1].headers.get("if-modified-since") == date(clock, -36000 - 3000)
    not_heuristic_status = fixed(status=302, location="/x", last_modified=date(clock, -36000))
    await fetch(mw, not_heuristic_status, get("/302"))
    await fetch(mw, not_heuristic_status, get("/302"))
    assert not_heuristic_status.calls == 2  # 302 is not heuristically cacheable


@pytest.mark.parametrize(
    "headers",
    [
        {"cache_control": "no-store, max-age=60"},
        {"cache_control": "private, max-age=60"},
        {"cache_control": 'private="set-cookie", max-age=60'},
        {"cache_control": "max-age=60", "set_cookie": "s=1"},
        {"cache_control": "max-age=60", "vary": "Accept, *"},
        {},  # no freshness, no Last-Modified: nothing to go on
    ],
    ids=["no-store", "private", "private-fields", "set-cookie", "vary-star", "no-freshness"],
)
async def test_not_stored(headers: dict[str, str]) -> None:
    mw, upstream = build(), fixed(**headers)
    await fetch(mw, upstream)
    again, _ = await fetch(mw, upstream)
    assert again.headers.get("x-cache") == "MISS" and upstream.calls == 2


async def test_statuses_not_understood_or_partial_are_not_stored() -> None:
    mw = build()
    for status in (206, 500, 418):
        upstream = fixed(status=status, cache_control="max-age=60")
        await fetch(mw, upstream, get(f"/{status}"))
        await fetch(mw, upstream, get(f"/{status}"))
        assert upstream.calls == 2, status
    not_found = fixed(status=404, cache_control="max-age=60")
    await fetch(mw, not_found, get("/404"))
    assert (await fetch(mw, not_found, get("/404")))[0].status == 404 and not_found.calls == 1


async def test_request_no_store_and_range_bypass() -> None:
    mw, upstream = build(), fixed(cache_control="max-age=60")
    await fetch(mw, upstream, get(cache_control="no-store"))
    await fetch(mw, upstream, get(range="bytes=0-1"))
    assert upstream.calls == 2
    await fetch(mw, upstream)
    await fetch(mw, upstream, get(range="bytes=0-1"))  # a range is passed through, not cut from the entry
    assert upstream.calls == 4


# --------------------------------------------------------------------------- authorization (§3.5)


async def test_authorized_requests_store_only_with_permission() -> None:
    mw = build()
    plain = fixed(cache_control="max-age=60")
    await fetch(mw, plain, get("/p", authorization="Bearer a"))
    await fetch(mw, plain, get("/p", authorization="Bearer a"))
    assert plain.calls == 2
    public = fixed(cache_control="public, max-age=60")
    await fetch(mw, public, get("/q", authorization="Bearer a"))
    hit, _ = await fetch(mw, public, get("/q", authorization="Bearer b"))
    assert hit.headers.get("x-cache") == "HIT" and public.calls == 1
    # Stored for an anonymous request, without public: not for a request that carries credentials.
    await fetch(mw, plain, get("/r"))
    assert (await fetch(mw, plain, get("/r")))[0].headers.get("x-cache") == "HIT"
    assert (await fetch(mw, plain, get("/r", authorization="Bearer a")))[0].headers.get("x-cache") == "MISS"


# --------------------------------------------------------------------------- Vary


async def test_vary_keeps_one_variant_per_request_value() -> None:
    def negotiate(request: Request) -> Reply:
        language = request.headers.get("accept-language") or "en"
        return 200, [("cache-control", "max-age=60"), ("vary", "Accept-Language")], language.encode()

    mw, upstream = build(), Upstream(negotiate)
    for language in ("fr", "de", "fr", "de", "fr"):
        _, body = await fetch(mw, upstream, get(accept_language=language))
        assert body == language.encode()
    assert upstream.calls == 2
    _, body = await fetch(mw, upstream, get(accept_language="fr,  de"))
    assert body == b"fr,  de" and upstream.calls == 3
    _, body = await fetch(mw, upstream, get(accept_language="fr, de"))  # the same list, normalised
    assert upstream.calls == 3


# --------------------------------------------------------------------------- validation


async def test_stale_entry_is_revalidated_and_refreshed_by_304() -> None:
    clock = ManualClock()

    def origin(request: Request) -> Reply:
        if request.headers.get("if-none-match") == '"v1"':
            return 304, [("etag", '"v1"'), ("cache-control", "max-age=100"), ("x-version", "2")], b""
        return 200, [("etag", '"v1"'), ("cache-control", "max-age=10"), ("x-version", "1")], b"body"

    mw, upstream = build(clock), Upstream(origin)
    await fetch(mw, upstream, get(if_none_match='"other"'))
    clock.advance(20)
    revalidated, body = await fetch(mw, upstream, get(if_none_match='"other"'))
    assert revalidated.status == 200 and body == b"body"
    assert revalidated.headers.get("x-cache") == "REVALIDATED" and revalidated.headers.get("x-version") == "2"
    assert upstream.requests[1].headers.get("if-none-match") == '"v1"'  # ours, not the client's
    assert revalidated.headers.get("content-length") == "4"
    clock.advance(90)  # fresh for 100 s from the 304 on
    hit, _ = await fetch(mw, upstream)
    assert hit.headers.get("x-cache") == "HIT" and hit.headers.get("age") == "90" and upstream.calls == 2


async def test_revalidation_with_last_modified_and_a_changed_resource() -> None:
    clock = ManualClock()
    version = {"n": 1}
    stamp = date(clock, -100)

    def origin(request: Request) -> Reply:
        if version["n"] == 1 and request.headers.get("if-modified-since") == stamp:
            return 304, [], b""
        return 200, [("last-modified", stamp), ("cache-control", "no-cache")], b"v%d" % version["n"]

    mw, upstream = build(clock), Upstream(origin)
    await fetch(mw, upstream)
    again, body = await fetch(mw, upstream)  # no-cache: stored, but validated on every use
    assert (again.headers.get("x-cache"), body, upstream.calls) == ("REVALIDATED", b"v1", 2)
    version["n"] = 2
    changed, body = await fetch(mw, upstream)
    assert (changed.headers.get("x-cache"), body) == ("MISS", b"v2")
    assert (await fetch(mw, upstream))[1] == b"v2"


async def test_request_directives() -> None:
    clock = ManualClock()
    mw = build(clock)
    upstream = fixed(cache_control="max-age=100", etag='"e"')
    await fetch(mw, upstream)
    clock.advance(50)
    cases = [
        ({"cache_control": "max-age=60"}, "HIT"),
        ({"cache_control": "max-age=40"}, "MISS"),  # too old for this client; upstream sends 200
        ({"cache_control": "min-fresh=40"}, "HIT"),
    ]
    for headers, label in cases:
        response, _ = await fetch(mw, upstream, get(**headers))
        assert response.headers.get("x-cache") == label, headers
    clock.advance(30)  # the entry stored by the MISS above is 30 s old
    assert (await fetch(mw, upstream, get(cache_control="min-fresh=80")))[0].headers.get("x-cache") == "MISS"
    calls = upstream.calls
    response, _ = await fetch(mw, upstream, get(cache_control="no-cache"))
    assert response.headers.get("x-cache") == "MISS" and upstream.calls == calls + 1
    assert upstream.requests[-1].headers.get("if-none-match") == '"e"'


async def test_max_stale_and_must_revalidate() -> None:
    clock = ManualClock()
    mw = build(clock)
    loose = fixed(cache_control="max-age=10")

    async def label(upstream: Upstream, path: str, directives: str) -> str | None:
        return (await fetch(mw, upstream, get(path, cache_control=directives)))[0].headers.get("x-cache")

    strict = fixed(cache_control="max-age=10, must-revalidate")
    await fetch(mw, loose, get("/loose"))
    await fetch(mw, strict, get("/strict"))
    clock.advance(30)
    assert await label(loose, "/loose", "max-stale=30") == "HIT"
    assert await label(loose, "/loose", "max-stale") == "HIT"
    assert await label(loose, "/loose", "max-stale=5") == "MISS"
    assert await label(strict, "/strict", "max-stale") == "MISS"


async def test_only_if_cached() -> None:
    mw, upstream = build(), fixed(cache_control="max-age=60")
    with pytest.raises(GatewayTimeout):
        await mw(get(cache_control="only-if-cached"), upstream)
    assert upstream.calls == 0
    await fetch(mw, upstream)
    hit, _ = await fetch(mw, upstream, get(cache_control="only-if-cached"))
    assert hit.headers.get("x-cache") == "HIT" and upstream.calls == 1


async def test_a_hit_answers_the_clients_conditionals() -> None:
    clock = ManualClock()
    mw = build(clock)
    upstream = fixed(cache_control="max-age=60", etag='W/"x"', last_modified=date(clock, -10))
    await fetch(mw, upstream)
    not_modified, body = await fetch(mw, upstream, get(if_none_match='"y", "x"'))
    assert (not_modified.status, body) == (304, b"") and not_modified.headers.get("etag") == 'W/"x"'
    assert "content-length" not in not_modified.headers
    changed, body = await fetch(mw, upstream, get(if_none_match='"y"', if_modified_since=date(clock)))
    assert (changed.status, body) == (200, b"hello")  # If-None-Match decides; Since is ignored
    since, _ = await fetch(mw, upstream, get(if_modified_since=date(clock)))
    assert since.status == 304 and upstream.calls == 1


async def test_head_is_answered_from_get_and_unsafe_methods_invalidate() -> None:
    mw, upstream = build(), fixed(cache_control="max-age=60")
    head, body = await fetch(mw, upstream, get(method="HEAD"))
    assert head.headers.get("x-cache") == "MISS"
    await fetch(mw, upstream)
    head, body = await fetch(mw, upstream, get(method="HEAD"))
    assert (head.headers.get("x-cache"), body, head.headers.get("content-length")) == ("HIT", b"", "5")
    assert upstream.calls == 2
    await fetch(mw, upstream, get(method="POST"))
    assert (await fetch(mw, upstream))[0].headers.get("x-cache") == "MISS"
    failed = fixed(status=500)
    await fetch(mw, failed, get(method="DELETE"))  # an error does not invalidate
    assert (await fetch(mw, upstream))[0].headers.get("x-cache") == "HIT"


# --------------------------------------------------------------------------- bodies and the store


class Gated:
    """A streamed body whose next chunk waits until the test lets it go."""

    def __init__(self, chunks: list[bytes], fail: bool = False) -> None:
        self.chunks, self.fail = chunks, fail
        self.sent = 0
        self.gate = anyio.Event()
        self.closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self.sent and self.sent < len(self.chunks):
            await self.gate.wait()
            self.gate = anyio.Event()
        if self.sent == len(self.chunks):
            if self.fail:
                raise BadGateway("upstream closed the connection mid-response")
            raise StopAsyncIteration
        self.sent += 1
        return self.chunks[self.sent - 1]

    async def aclose(self) -> None:
        self.closed = True


async def test_a_stored_body_streams_through_and_a_broken_one_is_not_stored() -> None:
    ok, broken = Gated([b"one ", b"two"]), Gated([b"one ", b"two"], fail=True)

    async def upstream(request: Request) -> Response:
        body = broken if request.path == "/broken" else ok
        return Response(200, Headers.from_pairs([("cache-control", "max-age=60")]), body)

    mw = build()
    response = await mw(get("/ok"), upstream)
    assert await response.body.__anext__() == b"one "  # handed on before the upstream sent the rest
    assert mw.state.statistics()["stored"] == 0
    ok.gate.set()
    assert [chunk async for chunk in response.body] == [b"two"]
    assert mw.state.statistics()["stored"] == 1

    cut = await mw(get("/broken"), upstream)
    broken.gate.set()
    with pytest.raises(BadGateway):
        async for _ in cut.body:
            pass
    assert mw.state.statistics()["stored"] == 1
    assert (await fetch(mw, Upstream(lambda r: (500, [], b""))))[0].headers.get("x-cache") == "MISS"


async def test_oversized_bodies_and_the_byte_bound() -> None:
    mw = build(max_bytes=4000, max_object_size=1500)
    big = fixed(body=b"x" * 2000, cache_control="max-age=60")
    await fetch(mw, big, get("/big"))
    await fetch(mw, big, get("/big"))
    assert big.calls == 2
    small = fixed(body=b"y" * 900, cache_control="max-age=60")
    for n in range(10):
        await fetch(mw, small, get(f"/s{n}"))
    stats = mw.state.statistics()
    assert stats["bytes"] <= 4000 and stats["evictions"] > 0
    assert (await fetch(mw, small, get("/s9")))[0].headers.get("x-cache") == "HIT"
    assert (await fetch(mw, small, get("/s0")))[0].headers.get("x-cache") == "MISS"  # evicted first


def test_entries_round_trip_through_bytes() -> None:
    entry = make_entry(
        200,
        ((b"cache-control", b"max-age=5"), (b"etag", b'"\xe9"')),
        (b"data: a\n\n", b"", b"data: b\n\n"),
        request_time=10.0,
        response_time=11.0,
        heuristic_max=0.0,
    )
    assert decode(encode(entry)) == entry
    record = VaryRecord(("accept", "accept-language"), "tok")
    assert decode(encode(record)) == record
    assert decode(b"E{broken") is None and decode(b"Z") is None and decode(encode(entry) + b"x") is None
    assert isinstance(decode(encode(entry)), Entry)


def test_events_are_split_at_blank_lines() -> None:
    data = b"data: a\n\nevent: x\r\ndata: b\r\n\r\ndata: c\r\rdata: partial"
    assert split_events(data) == (
        [b"data: a\n\n", b"event: x\r\ndata: b\r\n\r\n", b"data: c\r\r"],
        b"data: partial",
    )


# --------------------------------------------------------------------------- completions


class Llm:
    """An OpenAI-shaped upstream: JSON, or SSE events when the body asks for a stream."""

    def __init__(self, finish: bool = True) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.finish = finish

    async def __call__(self, request: Request) -> Response:
        raw = await read(request.body)
        body = json.loads(raw) if raw.startswith(b"{") else {"raw": raw.decode()}
        self.bodies.append(body)
        n = len(self.bodies)
        if body.get("stream"):
            events = [b'data: {"n": %d, "delta": "%s"}\n\n' % (n, w) for w in (b"a", b"b")]
            if self.finish:
                events.append(b"data: [DONE]\n\n")
            return Response(200, Headers.from_pairs([("content-type", "text/event-stream")]), _stream(events))
        data = json.dumps({"n": n}).encode()
        return Response(200, Headers.from_pairs([("content-type", "application/json")]), iter_body(data))


async def _stream(events: list[bytes]) -> AsyncIterator[bytes]:
    # Two events per chunk, then one: the stored copy is cut at event boundaries regardless.
    yield events[0] + events[1][:5]
    yield events[1][5:]
    for event in events[2:]:
        yield event


def post(body: Any, path: str = "/v1/chat/completions", **headers: str) -> Request:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    fields = {"host": "gw.test", "authorization": "Bearer k1"} | {
        k.replace("_", "-"): v for k, v in headers.items()
    }
    return Request(
        "POST", path, Headers.from_pairs(fields.items()), iter_body(data), content_length=len(data)
    )


CHAT = {"model": "m", "temperature": 0, "messages": [{"role": "user", "content": "hi  there"}]}


async def test_deterministic_completions_are_cached_by_canonical_body() -> None:
    mw, llm = build(llm=True), Llm()
    first = await mw(post(CHAT), llm)
    assert first.headers.get("x-cache") == "MISS" and json.loads(await read(first.body)) == {"n": 1}
    reordered = b'{ "messages":[{"content":"hi  there","role":"user"}],\n "temperature": 0.0, "model":"m"}'
    second = await mw(post(reordered), llm)
    assert second.headers.get("x-cache") == "HIT" and json.loads(await read(second.body)) == {"n": 1}
    other_text = {**CHAT, "messages": [{"role": "user", "content": "hi there"}]}
    assert json.loads(await read((await mw(post(other_text), llm)).body)) == {"n": 2}
    other_model = {**CHAT, "model": "m2"}
    assert json.loads(await read((await mw(post(other_model), llm)).body)) == {"n": 3}
    assert len(llm.bodies) == 3


async def test_tenants_do_not_share_and_sampling_is_opt_in() -> None:
    mw, llm = build(llm=True), Llm()
    await read((await mw(post(CHAT), llm)).body)
    other = await mw(post(CHAT, authorization="Bearer k2"), llm)
    assert other.headers.get("x-cache") == "MISS"
    await read(other.body)
    anonymous = Request(
        "POST",
        "/v1/chat/completions",
        Headers.from_pairs([("host", "gw.test")]),
        iter_body(json.dumps(CHAT).encode()),
    )
    await read((await mw(anonymous, llm)).body)
    assert "x-cache" not in (await mw(post({**CHAT, "temperature": 0.7}), llm)).headers
    assert len(llm.bodies) == 4
    shared, llm2 = build(llm=True, llm_scope="shared", llm_sampled=True), Llm()
    sampled = {**CHAT, "temperature": 0.7}
    await read((await shared(post(sampled), llm2)).body)
    hit = await shared(post(sampled, authorization="Bearer k9"), llm2)
    assert hit.headers.get("x-cache") == "HIT" and len(llm2.bodies) == 1


async def test_streams_are_replayed_event_by_event_and_only_when_finished() -> None:
    mw, llm = build(llm=True), Llm()
    streamed = {**CHAT, "stream": True}
    live = await mw(post(streamed), llm)
    live_chunks = [chunk async for chunk in live.body]
    replay = await mw(post(streamed), llm)
    assert (
        replay.headers.get("x-cache") == "HIT" and replay.headers.get("content-type") == "text/event-stream"
    )
    chunks = [chunk async for chunk in replay.body]
    assert chunks == [
        b'data: {"n": 1, "delta": "a"}\n\n',
        b'data: {"n": 1, "delta": "b"}\n\n',
        b"data: [DONE]\n\n",
    ]
    assert b"".join(chunks) == b"".join(live_chunks)
    plain = await mw(post(CHAT), llm)  # the non-streamed request is its own entry
    assert plain.headers.get("x-cache") == "MISS"
    await read(plain.body)
    cut, llm_cut = build(llm=True), Llm(finish=False)
    await read((await cut(post(streamed), llm_cut)).body)
    assert (await cut(post(streamed), llm_cut)).headers.get("x-cache") == "MISS"


async def test_completion_request_directives_and_oversized_requests() -> None:
    mw, llm = build(llm=True, llm_max_request_bytes=200), Llm()
    await read((await mw(post(CHAT, cache_control="no-store"), llm)).body)
    assert (await mw(post(CHAT), llm)).headers.get("x-cache") == "MISS"
    fresh = await mw(post(CHAT, cache_control="no-cache"), llm)
    assert fresh.headers.get("x-cache") == "MISS" and json.loads(await read(fresh.body)) == {"n": 3}
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 300}]}
    response = await mw(post(big), llm)
    await read(response.body)
    assert "x-cache" not in response.headers and llm.bodies[-1] == big  # proxied whole, uncached
    assert (await mw(post(b"not json"), llm)).status == 200 and "x-cache" not in (
        await mw(post(b"[1]"), llm)
    ).headers


async def test_concurrent_misses_never_leave_a_torn_entry() -> None:
    """Twenty requests race for one URL, each answered with its own body streamed in pieces; at
    every point a hit returns one complete body, never a mix or a prefix."""
    bodies = {n: [b"%02d:" % n + b"x" * 50] * 4 for n in range(20)}
    counter = iter(range(20))

    async def pieces(chunks: list[bytes]) -> AsyncIterator[bytes]:
        for chunk in chunks:
            await anyio.sleep(0)
            yield chunk

    async def upstream(request: Request) -> Response:
        chunks = bodies[next(counter)]
        return Response(200, Headers.from_pairs([("cache-control", "max-age=60")]), pieces(chunks))

    mw = build()
    complete = {b"".join(chunks) for chunks in bodies.values()}
    seen: list[bytes] = []

    async def client() -> None:
        response = await mw(get(), upstream)
        seen.append(await read(response.body))

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(client)
    assert set(seen) <= complete and len(seen) == 20
    hit, body = await fetch(mw, fixed())
    assert hit.headers.get("x-cache") == "HIT" and body in complete


def test_completion_endpoints_and_stream_ends() -> None:
    assert (
        completion_api("/v1/chat/completions") == "openai"
        and completion_api("/anthropic/v1/messages") == "anthropic"
    )
    assert completion_api("/v1/messages/count_tokens") is None and completion_api("/v1/embeddings") is None
    stop = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    start = b'event: message_start\ndata: {"type":"message_start"}\n\n'
    assert stream_finished("anthropic", [start, stop]) and not stream_finished("anthropic", [start])
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error"}}\n\n'
    assert not stream_finished("anthropic", [start, error, stop])
    assert not stream_finished("openai", [b'data: {"error": {"message": "cut"}}\n\n', b"data: [DONE]\n\n"])
    assert not stream_finished("openai", [])


async def test_in_front_of_compress_each_encoding_is_its_own_variant() -> None:
    ctx = BuildContext(node_id="middleware:compress", name="compress")
    compress = Compress(CompressConfig.model_validate({"min_length": 0}), None, ctx)
    upstream = fixed(body=b"text " * 100, cache_control="max-age=60", content_type="text/plain")
    mw = build()

    async def inner(request: Request) -> Response:
        return await compress(request, upstream)

    labels = []
    for encoding in ("gzip", "br", "gzip", "br", "identity"):
        response = await mw(get(accept_encoding=encoding), inner)
        body = await read(response.body)
        labels.append(response.headers.get("x-cache"))
        assert response.headers.get("content-encoding") == (None if encoding == "identity" else encoding)
        assert (body == b"text " * 100) == (encoding == "identity")
    assert labels == ["MISS", "MISS", "HIT", "HIT", "MISS"] and upstream.calls == 3


async def test_a_sized_body_is_stored_before_its_last_chunk_goes_out() -> None:
    # The client that has read Content-Length bytes may ask again at once (another gateway on the
    # same Redis, say): the entry must already be there, not stored after the body's end.
    sized = Gated([b"one ", b"two"])

    async def upstream(request: Request) -> Response:
        headers = Headers.from_pairs([("cache-control", "max-age=60"), ("content-length", "7")])
        return Response(200, headers, sized)

    mw = build()
    response = await mw(get(), upstream)
    assert await response.body.__anext__() == b"one " and mw.state.statistics()["stored"] == 0
    sized.gate.set()
    assert await response.body.__anext__() == b"two"
    assert mw.state.statistics()["stored"] == 1  # before the body reported its end
    assert (await fetch(mw, upstream))[0].headers.get("x-cache") == "HIT"
