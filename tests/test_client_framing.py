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
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest

from a3s_gateway.compiler import compile_config
from a3s_gateway.compiler.schema import EntrypointConfig
from a3s_gateway.runtime.api import Headers, Request, Response
from a3s_gateway.runtime.events import Body, EndOfBody, Event, RequestHead, Reset, ResponseHead
from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.runtime.ingress import ConnectionSettings
from a3s_gateway.runtime.protocols.http2 import H2ClientConnection
from a3s_gateway.runtime.upstream.client import UpstreamClient

from .backends import RawClient, ScriptedBackend, backend, gateway, proxy_to
from .stubs import eventually, free_port

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


# --------------------------------------------------------------------------- header names with "_"


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


def cgi_names(head: bytes) -> list[str]:
    """A head's field names as CGI/WSGI read them: upper case, `-` turned into `_`."""
    lines = head.split(b"\r\n")[1:]
    return [line.split(b":", 1)[0].decode().upper().replace("-", "_") for line in lines if line]


@asynccontextmanager
async def recorded(**entrypoint: Any) -> AsyncIterator[tuple[ScriptedBackend, int]]:
    """A gateway entrypoint in front of a backend that keeps each request head as received."""
    recorder = ScriptedBackend(lambda connection, head: OK)
    async with anyio.create_task_group() as tg:
        await tg.start(recorder.serve)
        client = UpstreamClient()
        try:
            async with gateway(proxy_to(recorder.url, client), **{**PATIENT, **entrypoint}) as server:
                yield recorder, server.addresses[0][1]
        finally:
            await client.aclose()
            tg.cancel_scope.cancel()


SPOOFING = (
    b"POST /x HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nContent_Length: 300\r\n"
    b"Transfer_Encoding: chunked\r\nX-Auth-User: alice\r\nX_Auth_User: root\r\n\r\nhello"
)


async def test_underscore_headers_are_deleted_by_default() -> None:
    async with recorded() as (be, port), RawClient.connect(port) as c:
        await c.send(SPOOFING)
        assert (await c.read_response()).status == 200
        names = cgi_names(be.heads[-1])
        assert names.count("CONTENT_LENGTH") == 1 and "TRANSFER_ENCODING" not in names
        assert names.count("X_AUTH_USER") == 1 and b"alice" in be.heads[-1] and b"root" not in be.heads[-1]


async def test_underscore_headers_rejected_get_400() -> None:
    async with recorded(underscore_headers="reject") as (be, port):
        async with RawClient.connect(port) as c:
            await c.send(SPOOFING)
            await refused_with(c, 400)
        async with RawClient.connect(port) as c:  # names without "_" still pass
            await c.send(b"GET /x HTTP/1.1\r\nHost: gw\r\nX-Auth-User: alice\r\n\r\n")
            assert (await c.read_response()).status == 200
        assert len(be.heads) == 1


async def test_underscore_headers_kept_except_framing_aliases() -> None:
    async with recorded(underscore_headers="keep") as (be, port), RawClient.connect(port) as c:
        await c.send(SPOOFING)
        assert (await c.read_response()).status == 200
        names = cgi_names(be.heads[-1])
        assert names.count("CONTENT_LENGTH") == 1 and "TRANSFER_ENCODING" not in names
        assert b"X_Auth_User: root" in be.heads[-1] or b"x_auth_user: root" in be.heads[-1]


# --------------------------------------------------------------------------- HTTP/2: the same policy


async def h2_request(port: int, head: RequestHead, body: bytes | None = None) -> list[Event]:
    """Send one request on a fresh h2c connection; the events of its stream until it ends."""
    client = H2ClientConnection()
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        sid = client.open_stream()
        head = RequestHead(
            sid, head.method, head.target, head.headers, b"2", b"http", b"gw", body is not None
        )
        data = client.data_to_send() + client.send(head)
        if body is not None:
            data += client.send(Body(sid, body)) + client.send(EndOfBody(sid))
        await stream.send(data)
        return await h2_events(stream, client, sid)


async def h2_events(
    stream: anyio.abc.ByteStream, client: H2ClientConnection, sid: int, writing: anyio.Lock | None = None
) -> list[Event]:
    """Read until stream `sid` ends; `writing` is held while answering (another task may write)."""
    out: list[Event] = []
    with anyio.fail_after(10):
        while not out or type(out[-1]) not in (EndOfBody, Reset):
            try:
                data = await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                break
            out += [ev for ev in client.receive_data(data) if getattr(ev, "stream_id", None) == sid]
            async with writing or anyio.Lock():
                await stream.send(client.data_to_send())
    return out


def _status(events: list[Event]) -> int:
    return next(ev.status for ev in events if isinstance(ev, ResponseHead))


async def test_h2_underscore_headers_follow_the_policy() -> None:
    fields = [
        (b"host", b"gw"),
        (b"content-length", b"5"),
        (b"x-auth-user", b"alice"),
        (b"x_auth_user", b"root"),
        (b"content_length", b"9"),
    ]
    head = RequestHead(0, b"POST", b"/x", fields)
    for policy, status, expected in [
        ("delete", 200, {"X_AUTH_USER": 1, "CONTENT_LENGTH": 1}),
        ("keep", 200, {"X_AUTH_USER": 2, "CONTENT_LENGTH": 1}),
        ("reject", 400, None),
    ]:
        async with recorded(underscore_headers=policy) as (be, port):
            events = await h2_request(port, head, b"hello")
            assert _status(events) == status, policy
            if expected is None:
                assert be.heads == []
                continue
            names = cgi_names(be.heads[-1])
            assert {n: names.count(n) for n in expected} == expected, policy


# --------------------------------------------------------------------------- request body deadline


async def trickle(c: RawClient, count: int = 400) -> None:
    """Send one body byte every 50 ms until the gateway stops listening (bounded)."""
    for _ in range(count):
        try:
            await c.send(b"x")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return
        await anyio.sleep(0.05)


async def test_trickled_upload_gets_408_and_a_close() -> None:
    async with (
        proxied(timeouts={"read_header": 60, "idle": 60, "read_body": 0.5}) as (_, port),
        RawClient.connect(port) as c,
        anyio.create_task_group() as tg,
    ):
        await c.send(b"POST /upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 100000\r\n\r\nabc")
        tg.start_soon(trickle, c)
        await refused_with(c, 408)
        tg.cancel_scope.cancel()


async def test_trickled_chunked_upload_gets_408() -> None:
    async with (
        proxied(timeouts={"read_header": 60, "idle": 60, "read_body": 0.5}) as (_, port),
        RawClient.connect(port) as c,
        anyio.create_task_group() as tg,
    ):
        await c.send(CHUNKED_HEAD + b"100000\r\n")
        tg.start_soon(trickle, c)
        await refused_with(c, 408)
        tg.cancel_scope.cancel()


async def _echo(request: Request) -> Response:
    """Answers at once and streams the request body back: the response starts before the body ends."""
    return Response(200, Headers.from_pairs([("content-type", "text/plain")]), request.body)


async def test_late_body_after_the_response_started_cuts_the_exchange() -> None:
    async with (
        gateway(_echo, timeouts={"read_header": 60, "idle": 60, "read_body": 0.5}) as server,
        RawClient.connect(server.addresses[0][1]) as c,
        anyio.create_task_group() as tg,
    ):
        await c.send(CHUNKED_HEAD + b"3\r\nabc\r\n")
        with anyio.fail_after(10):
            status, headers = await c.read_head()
            assert status == 200 and ("transfer-encoding", "chunked") in headers
            assert await c.read_chunk() == b"abc"
        tg.start_soon(trickle, c)
        with anyio.fail_after(10):
            # The connection is closed without the last chunk: the client sees a cut body.
            while await c._fill():
                pass
        assert not c.buffer.endswith(b"0\r\n\r\n")
        tg.cancel_scope.cancel()


async def test_a_slow_but_complete_upload_within_read_body_passes() -> None:
    async with (
        proxied(timeouts={"read_header": 60, "idle": 60, "read_body": 30}) as (_, port),
        RawClient.connect(port) as c,
    ):
        await c.send(b"POST /upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 6\r\n\r\nabc")
        await anyio.sleep(0.2)
        await c.send(b"def")
        assert (await c.read_response()).body == b"6"
        # Waiting for the next request is not a body: no 408 on an idle keep-alive connection.
        await c.send(b"GET /json HTTP/1.1\r\nHost: gw\r\n\r\n")
        assert (await c.read_response()).status == 200


async def test_h2_trickled_upload_gets_408_on_its_stream() -> None:
    async with proxied(timeouts={"read_header": 60, "idle": 60, "read_body": 0.5}) as (_, port):
        client = H2ClientConnection()
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            sid = client.open_stream()
            head = RequestHead(sid, b"POST", b"/upload", [(b"host", b"gw")], b"2", b"http", b"gw", True)
            await stream.send(client.data_to_send() + client.send(head) + client.send(Body(sid, b"abc")))

            writing = anyio.Lock()

            async def trickle_h2() -> None:
                for _ in range(400):
                    try:
                        async with writing:
                            await stream.send(client.send(Body(sid, b"x")))
                    except Exception:
                        return
                    await anyio.sleep(0.05)

            async with anyio.create_task_group() as tg:
                tg.start_soon(trickle_h2)
                events = await h2_events(stream, client, sid, writing)
                tg.cancel_scope.cancel()
            assert _status(events) == 408
            # The same connection serves the next stream.
            sid2 = client.open_stream()
            await stream.send(client.send(RequestHead(sid2, b"GET", b"/json", [(b"host", b"gw")], b"2")))
            assert _status(await h2_events(stream, client, sid2)) == 200


async def test_h2_late_body_after_the_response_started_resets_the_stream() -> None:
    async with gateway(_echo, timeouts={"read_header": 60, "idle": 60, "read_body": 0.5}) as server:
        client = H2ClientConnection()
        async with await anyio.connect_tcp("127.0.0.1", server.addresses[0][1]) as stream:
            sid = client.open_stream()
            head = RequestHead(sid, b"POST", b"/", [(b"host", b"gw")], b"2", b"http", b"gw", True)
            await stream.send(client.data_to_send() + client.send(head) + client.send(Body(sid, b"abc")))
            events = await h2_events(stream, client, sid)
            assert _status(events) == 200 and isinstance(events[-1], Reset)


async def _slow_after_the_body(request: Request) -> Response:
    """Reads the whole body, then takes longer than the entrypoint's read_body to answer."""
    size = sum([len(chunk) async for chunk in request.body])
    await anyio.sleep(1.0)
    return Response(200, Headers.from_pairs([("content-type", "text/plain")]), _once(b"%d" % size))


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_a_body_complete_in_time_is_not_408_however_long_the_answer_takes() -> None:
    """read_body bounds the upload, not the handler: on both protocols, a body that ended in
    time is answered whenever its handler is done, even a body that ended in the same read as
    its head (before the HTTP/2 stream's task started)."""
    async with gateway(
        _slow_after_the_body, timeouts={"read_header": 60, "idle": 60, "read_body": 0.3}
    ) as server:
        port = server.addresses[0][1]
        async with RawClient.connect(port) as c:
            await c.send(b"POST / HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\n\r\nabc")
            reply = await c.read_response()
            assert (reply.status, reply.body) == (200, b"3")
        head = RequestHead(0, b"POST", b"/", [(b"host", b"gw"), (b"content-length", b"3")])
        events = await h2_request(port, head, b"abc")
        assert _status(events) == 200 and isinstance(events[-1], EndOfBody)
        assert b"".join(ev.data for ev in events if isinstance(ev, Body)) == b"3"


async def test_h2_client_with_httpx_uploads_within_read_body() -> None:
    async with (
        proxied(timeouts={"read_header": 60, "idle": 60, "read_body": 30}) as (_, port),
        httpx.AsyncClient(http1=False, http2=True) as client,
    ):
        response = await client.post(f"http://127.0.0.1:{port}/upload", content=b"u" * 100_000)
        assert response.status_code == 200 and response.text == "100000"


# --------------------------------------------------------------------------- from the config file


def _config(tmp_path: Path, port: int, entrypoint: str) -> Path:
    path = tmp_path / "gw.hcl"
    path.write_text(
        f"""entrypoints "web" {{
  address = "127.0.0.1:{port}"
{entrypoint}
}}
routers "llm" {{
  rule    = "PathPrefix(`/v1`)"
  service = "llm"
}}
services "llm" {{
  load_balancer {{ servers = [{{ url = "demo://llm" }}] }}
}}
"""
    )
    return path


async def test_the_entrypoint_keys_act_in_a_running_gateway(tmp_path: Path) -> None:
    port = free_port()
    config = _config(tmp_path, port, '  underscore_headers = "reject"\n  timeouts { read_body = "300ms" }')
    async with Gateway(str(config)):
        async with RawClient.connect(port) as c:
            await c.send(b"GET /v1/models HTTP/1.1\r\nHost: gw\r\nX_Api_Key: k\r\n\r\n")
            await refused_with(c, 400)
        async with RawClient.connect(port) as c, anyio.create_task_group() as tg:
            await c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Length: 900\r\n\r\n{")
            tg.start_soon(trickle, c)
            await refused_with(c, 408)
            tg.cancel_scope.cancel()


def test_read_body_zero_turns_the_deadline_off() -> None:
    config = EntrypointConfig(address="127.0.0.1:0", timeouts={"read_body": "0s"})  # type: ignore[arg-type]
    assert ConnectionSettings.from_config(config, scheme="http").read_body == float("inf")


def test_an_unknown_underscore_policy_is_a_config_error_at_its_line(tmp_path: Path) -> None:
    result = compile_config([str(_config(tmp_path, 8080, '  underscore_headers = "drop"'))])
    [error] = [d for d in result.diagnostics if d.severity == "error"]
    assert error.span is not None and (error.span.line, error.span.col) == (3, 3)
    assert "delete" in error.message and "reject" in error.message and "keep" in error.message
