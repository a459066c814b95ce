"""A pooled upstream connection never carries bytes from one client to the next, and HEAD.

The backend here is a raw socket that writes exactly the bytes a test scripts
(`backends.ScriptedBackend`), so it can do what a broken or hostile server does: send more than one response in one read (a HEAD answered with
a body, a forged `302 Location: http://evil.example/`), or send bytes while its connection sits
idle in the pool. The gateway parks a connection only when nothing is left buffered after its
response (in h11, in TLS, in the socket); otherwise it is closed, and the next client gets a
fresh connection. Every test runs on asyncio, uvloop and trio.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import httpx
import pytest

from a3s_gateway.compiler.schema import ServiceTimeouts
from a3s_gateway.runtime import tls
from a3s_gateway.runtime.api import Headers, Request, Response
from a3s_gateway.runtime.upstream.client import UpstreamClient

from .backends import Answer, RawClient, ScriptedBackend, Stack, gateway, get, make_certs, proxy_to
from .stubs import eventually

pytestmark = pytest.mark.anyio


def ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)


def target_of(head: bytes) -> bytes:
    return head.split(b" ", 2)[1]


@asynccontextmanager
async def proxied(
    answer: Answer,
    *,
    backend_ssl: ssl.SSLContext | None = None,
    upstream_ssl: ssl.SSLContext | None = None,
    tail: Callable[[int, bytes], bytes] | None = None,
) -> AsyncIterator[Stack[ScriptedBackend]]:
    be = ScriptedBackend(answer, backend_ssl)
    if tail is not None:
        be.tail = tail
    client = UpstreamClient(ssl_context=upstream_ssl)
    async with anyio.create_task_group() as tg:
        await tg.start(be.serve)
        try:
            async with gateway(proxy_to(be.url, client)) as server:
                yield Stack(be, server, client)
        finally:
            await client.aclose()
            tg.cancel_scope.cancel()


# --------------------------------------------------------------------------- bytes after a response

FORGED_302 = b"HTTP/1.1 302 Found\r\nLocation: http://evil.example/\r\nContent-Length: 0\r\n\r\n"
# Without its blank line, the next real response's status line would become this header's value
# and its body the forged 302's body.
FORGED_302_PREFIX = b"HTTP/1.1 302 Found\r\nLocation: http://evil.example/\r\nX-Swallow: "

EXTRAS = {
    "forged-302": FORGED_302,
    "forged-302-prefix": FORGED_302_PREFIX,
    "partial-status-line": b"HTTP/1.1 30",
    "junk": b"\x00\xffnot http at all",
    "crlf": b"\r\n",
}


def first_answer_then_clean(extra: bytes) -> Answer:
    """The first request on connection 1 gets a response with `extra` behind it in the same
    write; every other request gets a clean 200 echoing its target."""

    def answer(connection: int, head: bytes) -> bytes:
        if connection == 1 and target_of(head) == b"/first":
            return ok(b"first") + extra
        return ok(target_of(head))

    return answer


@pytest.mark.parametrize("extra", EXTRAS.values(), ids=EXTRAS.keys())
async def test_bytes_after_a_response_never_reach_the_next_client(extra: bytes) -> None:
    async with proxied(first_answer_then_clean(extra)) as s:
        first = await get(s.port, "/first")
        assert (first.status, first.body) == (200, b"first")
        second = await get(s.port, "/second")
        assert (second.status, second.body) == (200, b"/second")
        assert second.header("location") is None
        assert s.backend.connections == 2  # the first connection was closed, not pooled
        third = await get(s.port, "/third")  # and the fresh one is reused as usual
        assert (third.status, third.body) == (200, b"/third") and s.backend.connections == 2


async def test_a_clean_response_keeps_its_connection() -> None:
    async with proxied(first_answer_then_clean(b"")) as s:
        for target in ("/first", "/second", "/third"):
            assert (await get(s.port, target)).status == 200
        assert s.backend.connections == 1


async def test_bytes_arriving_while_the_connection_is_idle_retire_it() -> None:
    """Bytes that come after the response, while the connection waits in the pool: a readable
    idle connection is not reusable (as in httpcore and Go's transport)."""
    async with proxied(lambda connection, head: ok(target_of(head))) as s:
        assert (await get(s.port, "/first")).body == b"/first"
        await s.backend.streams[0].send(FORGED_302)
        (pool,) = s.client._pools.values()
        await eventually(lambda: pool._idle[0].looks_closed())
        second = await get(s.port, "/second")
        assert (second.status, second.body) == (200, b"/second")
        assert s.backend.connections == 2 and pool.statistics().reuses == 0


@pytest.fixture
def tls_pair(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    certs = make_certs(tmp_path, ["localhost"])
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(*certs.leaves["localhost"])
    return server, tls.client_context(cafile=certs.ca_file)


@pytest.mark.parametrize("extra", [FORGED_302, FORGED_302_PREFIX], ids=["forged-302", "forged-302-prefix"])
async def test_a_second_tls_record_after_the_response_retires_the_connection(
    extra: bytes, tls_pair: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    """Under TLS the extra bytes can wait undecrypted in the TLS layer, not in the socket."""

    def tail(connection: int, head: bytes) -> bytes:
        return extra if connection == 1 else b""

    server_ctx, client_ctx = tls_pair
    answer = first_answer_then_clean(b"")
    async with proxied(answer, backend_ssl=server_ctx, upstream_ssl=client_ctx, tail=tail) as s:
        assert (await get(s.port, "/first")).body == b"first"
        second = await get(s.port, "/second")
        assert (second.status, second.body) == (200, b"/second")
        assert s.backend.connections == 2


# --------------------------------------------------------------------------- a reused connection dies


def one_answer_per_connection(connection: int, head: bytes, answered: set[int]) -> bytes:
    """Answer a connection's first request (with keep-alive); on its second, close without a
    byte: the race a reused connection loses to the server's keep-alive timer, after the check
    before reuse saw nothing."""
    if connection in answered:
        raise anyio.EndOfStream  # the scripted backend closes the connection
    answered.add(connection)
    return ok(target_of(head))


async def test_a_reused_connection_closed_unanswered_is_retried_only_when_safe() -> None:
    answered: set[int] = set()
    async with proxied(lambda number, head: one_answer_per_connection(number, head, answered)) as s:
        assert (await get(s.port, "/a")).body == b"/a"
        # A bodiless GET reached the dead connection: it goes again, once, on a fresh one.
        assert (await get(s.port, "/b")).body == b"/b"
        assert s.backend.connections == 2
        # A POST with a body may have reached the application: a 502, not a second try.
        reply = await get(s.port, "/c", body=b"once")
        assert reply.status == 502 and "without responding" in reply.json()["error"]["message"]
        assert s.backend.connections == 2 and [target_of(h) for h in s.backend.heads].count(b"/c") == 1
        await eventually(lambda: s.client.in_flight == 0)
        assert s.client.statistics().pools[0].active == 0


async def test_outside_a_listener_a_reused_connection_closed_unanswered_is_retried() -> None:
    """The same retry with cancel scopes for the timeouts (no deadline watch)."""
    answered: set[int] = set()
    be = ScriptedBackend(lambda number, head: one_answer_per_connection(number, head, answered))
    client = UpstreamClient()
    async with anyio.create_task_group() as tg:
        await tg.start(be.serve)
        try:
            for target in ("/a", "/b"):
                request = Request("GET", target, Headers.from_pairs([("host", "x")]), content_length=0)
                response = await client.send(request, be.url, ServiceTimeouts(), headers=request.headers)
                assert b"".join([chunk async for chunk in response.body]) == target.encode()
            assert be.connections == 2 and client.in_flight == 0
        finally:
            await client.aclose()
            tg.cancel_scope.cancel()


# --------------------------------------------------------------------------- HEAD


def head_answer(head_response: bytes) -> Answer:
    """HEAD gets `head_response`; anything else a clean 200 echoing its target."""

    def answer(connection: int, head: bytes) -> bytes:
        return head_response if head.startswith(b"HEAD ") else ok(target_of(head))

    return answer


HEAD_1000 = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nX-Head: yes\r\n\r\n"
HEAD_CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Head: yes\r\n\r\n"


@pytest.mark.parametrize("head_response", [HEAD_1000, HEAD_CHUNKED], ids=["content-length", "chunked"])
async def test_head_then_get_on_one_keep_alive_connection(head_response: bytes) -> None:
    async with proxied(head_answer(head_response)) as s, RawClient.connect(s.port) as c:
        for i in range(2):
            await c.send(b"HEAD /h HTTP/1.1\r\nHost: gw\r\n\r\n")
            head = await c.read_response("HEAD")
            assert head.status == 200 and head.header("x-head") == "yes"
            if head_response is HEAD_1000:
                assert head.header("content-length") == "1000"
            await c.send(b"GET /after%d HTTP/1.1\r\nHost: gw\r\n\r\n" % i)
            after = await c.read_response()
            assert (after.status, after.body) == (200, b"/after%d" % i)
        assert s.backend.connections == 1  # nothing was left over: the connection stayed pooled
        assert s.server.statistics().connections == 1


async def test_pipelined_head_and_get_in_one_write() -> None:
    async with proxied(head_answer(HEAD_1000)) as s, RawClient.connect(s.port) as c:
        await c.send(
            b"HEAD /h HTTP/1.1\r\nHost: gw\r\n\r\nGET /after HTTP/1.1\r\nHost: gw\r\n\r\n"
            b"HEAD /h HTTP/1.1\r\nHost: gw\r\n\r\nGET /last HTTP/1.1\r\nHost: gw\r\n\r\n"
        )
        for target in (b"/after", b"/last"):
            head = await c.read_response("HEAD")
            assert head.status == 200 and head.header("content-length") == "1000"
            after = await c.read_response()
            assert (after.status, after.body) == (200, target)
        assert s.backend.connections == 1


async def test_a_head_answered_with_a_body_is_not_reused() -> None:
    """A backend that wrongly sends the 1000 bytes its HEAD response declares: they must not
    be read as the next response, so the connection is closed."""
    async with proxied(head_answer(HEAD_1000 + b"x" * 1000)) as s, RawClient.connect(s.port) as c:
        await c.send(b"HEAD /h HTTP/1.1\r\nHost: gw\r\n\r\n")
        head = await c.read_response("HEAD")
        assert head.status == 200 and head.header("content-length") == "1000"
        await c.send(b"GET /after HTTP/1.1\r\nHost: gw\r\n\r\n")
        after = await c.read_response()
        assert (after.status, after.body) == (200, b"/after")
        assert s.backend.connections == 2
        assert s.server.statistics().connections == 1  # the client's connection carried on


async def test_a_handler_response_to_head_sends_no_body_and_keeps_the_connection() -> None:
    """A response made by the gateway itself (an error, a middleware's answer) has a body; to
    a HEAD request only its head goes out, and the connection carries on."""

    async def answer(request: Request) -> Response:
        return Response.json(404, {"error": "not here", "method": request.method})

    async with gateway(answer) as server, RawClient.connect(server.addresses[0][1]) as c:
        await c.send(b"HEAD /x HTTP/1.1\r\nHost: gw\r\n\r\nGET /y HTTP/1.1\r\nHost: gw\r\n\r\n")
        head = await c.read_response("HEAD")
        assert head.status == 404 and int(head.header("content-length") or 0) > 0
        after = await c.read_response()
        assert after.status == 404 and after.json()["method"] == "GET"
        await c.send(b"HEAD /z HTTP/1.1\r\nHost: gw\r\n\r\n")
        assert (await c.read_response("HEAD")).status == 404
        await c.send(b"GET /z HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        assert (await c.read_response()).json()["method"] == "GET"
        assert await c.at_eof()  # nothing stray was written after any HEAD response


async def test_head_over_http2_has_no_body_and_the_connection_carries_on() -> None:
    async with (
        proxied(head_answer(HEAD_1000)) as s,
        httpx.AsyncClient(http1=False, http2=True) as client,
    ):
        for i in range(2):
            head = await client.head(f"http://127.0.0.1:{s.port}/h")
            assert head.http_version == "HTTP/2" and head.status_code == 200
            assert head.headers["x-head"] == "yes" and head.content == b""
            after = await client.get(f"http://127.0.0.1:{s.port}/after{i}")
            assert after.content == b"/after%d" % i
        assert s.server.statistics().connections == 1 and s.backend.connections == 1
