"""Client-side framing and header checks, driven as raw bytes through a real listener.

Each test starts a real gateway entrypoint (`tests/backends.py: gateway`) in front of a real
backend and talks to it with a byte-level client (HTTP/1.1) or our own h2 client adapter over a
socket (HTTP/2): malformed chunked bodies, header names with `_`, empty lines before a request
line, the request-body deadline (`timeouts { read_body }`) and unknown transfer codings. A
malformed request must be answered promptly: the entrypoints here have long idle and head
timeouts, so an answer that came from a timeout would not come within the tests' bounds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest

from a3s_gateway.runtime.upstream.client import UpstreamClient

from .backends import RawClient, backend, gateway, proxy_to
from .stubs import eventually

pytestmark = pytest.mark.anyio

# Long enough that an answer can only come from the check under test, not from a timeout.
PATIENT = {"timeouts": {"read_header": 60, "idle": 60}}


@asynccontextmanager
async def proxied(**entrypoint: Any) -> AsyncIterator[tuple[Any, int]]:
    """A gateway entrypoint proxying to the scripted backend: (backend, port)."""
    async with backend() as be:
        client = UpstreamClient()
        try:
            async with gateway(proxy_to(be.url, client), **{**PATIENT, **entrypoint}) as server:
                yield be, server.addresses[0][1]
        finally:
            await client.aclose()


async def refused_with(c: RawClient, status: int) -> None:
    """The next response is `status` as JSON, then the connection closes."""
    with anyio.fail_after(10):
        reply = await c.read_response()
        assert reply.status == status, reply
        assert reply.json()["error"]["status"] == status
        assert await c.at_eof()


# --------------------------------------------------------------------------- malformed chunked bodies

CHUNKED_HEAD = b"POST /upload HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"

MALFORMED_CHUNKS = {
    "size-overflows": b"8000000000000000\r\n",
    "size-overflows-long": b"1" + b"0" * 40 + b"\r\n",
    "size-not-hex": b"zz\r\n",
    "size-not-hex-suffix": b"5x\r\nhello\r\n",
    "size-hex-prefix": b"0x5\r\nhello\r\n",
    "size-empty": b"\r\nhello\r\n",
    "size-line-bare-lf": b"5\nhello\r\n0\r\n\r\n",
    "ext-line-bare-lf": b"5;a=b\nhello\r\n0\r\n\r\n",
    "cr-without-lf": b"5\rhello\r\n",
    "data-bare-lf": b"5\r\nhello\n0\r\n\r\n",
    "data-no-crlf": b"5\r\nhelloXX0\r\n\r\n",
    "data-too-long": b"5\r\nhello!\r\n0\r\n\r\n",
    "ext-space-in-name": b"5;a b\r\nhello\r\n0\r\n\r\n",
    "ext-control-byte": b"5;\x01\r\nhello\r\n0\r\n\r\n",
    "ext-no-name": b"5;=v\r\nhello\r\n0\r\n\r\n",
    "ext-no-value": b"5;a=\r\nhello\r\n0\r\n\r\n",
    "ext-no-semicolon": b"5 a=b\r\nhello\r\n0\r\n\r\n",
    "space-before-semicolon": b"5 ;a=b\r\nhello\r\n0\r\n\r\n",
    "ext-separator-in-token": b"5;a=b/c\r\nhello\r\n0\r\n\r\n",
    "ext-unclosed-quote": b'5;a="b\r\nhello\r\n0\r\n\r\n',
    "last-chunk-bare-lf": b"0\n\r\n",
    "trailer-end-bare-lf": b"0\r\n\n",
    "trailer-field-bare-lf": b"0\r\nx-t: 1\n\r\n",
    "trailer-obs-fold": b"0\r\nx-t: 1\r\n folded\r\n\r\n",
    # Incomplete lines, then the client stalls: h11 alone would wait for more bytes (a hang
    # until a timeout); the first byte that breaks the grammar is enough to answer.
    "stalled-not-hex": b"zz",
    "stalled-overflow": b"10000000000000000",
    "stalled-bare-lf": b"5\nhel",
    "stalled-after-data": b"5\r\nhello\n",
    "stalled-ext": b"5;a b",
    "stalled-quoted-ext": b'5;a="\x01',
}


@pytest.mark.parametrize("body", MALFORMED_CHUNKS.values(), ids=MALFORMED_CHUNKS.keys())
async def test_malformed_chunked_body_with_the_head_is_refused_at_once(body: bytes) -> None:
    async with proxied() as (be, port), RawClient.connect(port) as c:
        await c.send(CHUNKED_HEAD + body)  # and then nothing: the client waits for an answer
        await refused_with(c, 400)
        assert [s.target for s in be.seen if s.target == "/upload"] == []


@pytest.mark.parametrize("body", MALFORMED_CHUNKS.values(), ids=MALFORMED_CHUNKS.keys())
async def test_malformed_chunk_mid_upload_gets_400_and_a_close(body: bytes) -> None:
    """The head and a valid chunk went upstream already; the bad bytes arrive while the backend
    reads the body: the client still gets 400 and a close, promptly."""
    async with proxied() as (be, port), RawClient.connect(port) as c:
        await c.send(CHUNKED_HEAD + b"5\r\nfirst\r\n")
        await eventually(lambda: be.uploads == [5])
        await c.send(body)
        await refused_with(c, 400)


@pytest.mark.parametrize(
    "body",
    [
        b"5;name=value\r\nhello\r\n0\r\n\r\n",
        b'5; a = "q \\" ;x" ;b\r\nhello\r\n0;last\r\n\r\n',
        b"5  \r\nhello\r\n0\r\n\r\n",  # whitespace before the CRLF, as Go and nginx accept
        b"00005\r\nhello\r\n000\r\nx-trailer: 1\r\n\r\n",
        b"5\r\nhello\r\n0\r\n\r\n",
    ],
    ids=["ext-token", "ext-quoted-bws", "trailing-space", "zeros-and-trailer", "plain"],
)
async def test_valid_chunked_bodies_pass(body: bytes) -> None:
    async with proxied() as (_, port), RawClient.connect(port) as c:
        # Split at every third byte: the framing check must not depend on how bytes arrive.
        for i in range(0, len(body), 3):
            await c.send((CHUNKED_HEAD if i == 0 else b"") + body[i : i + 3])
        reply = await c.read_response()
        assert (reply.status, reply.body) == (200, b"5")
        await c.send(b"GET /json HTTP/1.1\r\nHost: gw\r\n\r\n")  # the connection is still usable
        assert (await c.read_response()).status == 200


async def test_a_request_pipelined_after_a_chunked_body_is_not_judged_as_chunks() -> None:
    async with proxied() as (_, port), RawClient.connect(port) as c:
        await c.send(CHUNKED_HEAD + b"5\r\nhello\r\n0\r\n\r\nGET /json?next HTTP/1.1\r\nHost: gw\r\n\r\n")
        assert (await c.read_response()).body == b"5"
        assert (await c.read_response()).json()["target"] == "/json?next"


# --------------------------------------------------------------------------- unknown transfer codings


@pytest.mark.parametrize("coding", [b"gzip", b"gzip, chunked", b"xchunked", b"identity"])
async def test_unknown_transfer_coding_is_501(coding: bytes) -> None:
    async with proxied() as (be, port), RawClient.connect(port) as c:
        await c.send(
            b"POST /json HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: " + coding + b"\r\n\r\n0\r\n\r\n"
        )
        await refused_with(c, 501)
        assert be.seen == []


@pytest.mark.parametrize(
    "codings",
    [b"chunked, identity", b"chunked, chunked", b"chunked\r\nTransfer-Encoding: chunked"],
    ids=["chunked-not-last", "chunked-twice", "two-fields"],
)
async def test_chunked_not_last_or_twice_stays_400(codings: bytes) -> None:
    """RFC 9112 §6.3: the length cannot be determined, which is a 400, not a missing feature."""
    async with proxied() as (be, port), RawClient.connect(port) as c:
        await c.send(
            b"POST /json HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: " + codings + b"\r\n\r\n0\r\n\r\n"
        )
        await refused_with(c, 400)
        assert be.seen == []


# --------------------------------------------------------------------------- empty lines before a request


@pytest.mark.parametrize(
    "blank", [b"\r\n", b"\n", b"\r\n\r\n\r\n", b"\n\r\n\n"], ids=["crlf", "lf", "3crlf", "mixed"]
)
async def test_empty_lines_before_a_request_line_are_ignored(blank: bytes) -> None:
    async with proxied() as (_, port), RawClient.connect(port) as c:
        await c.send(blank + b"GET /json?first HTTP/1.1\r\nHost: gw\r\n\r\n")
        assert (await c.read_response()).json()["target"] == "/json?first"
        # Between keep-alive requests, in their own reads and byte by byte.
        await c.send(blank)
        for byte in blank:
            await c.send(bytes([byte]))
        await c.send(b"GET /json?second HTTP/1.1\r\nHost: gw\r\n\r\n")
        assert (await c.read_response()).json()["target"] == "/json?second"
        # Between pipelined requests, after a body (the CRLF old clients add after a POST).
        await c.send(
            b"POST /json?third HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\n\r\nhi"
            + blank
            + b"GET /json?fourth HTTP/1.1\r\nHost: gw\r\n\r\n"
        )
        assert (await c.read_response()).json()["body"] == "hi"
        assert (await c.read_response()).json()["target"] == "/json?fourth"


async def test_a_request_line_starting_with_a_space_is_still_400() -> None:
    async with proxied() as (_, port), RawClient.connect(port) as c:
        await c.send(b"\r\n GET /json HTTP/1.1\r\nHost: gw\r\n\r\n")
        await refused_with(c, 400)
