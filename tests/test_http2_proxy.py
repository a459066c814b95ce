"""HTTP/2 through the gateway on real sockets: h2c prior knowledge and ALPN h2 on the client
side, HTTP/1.1, h2c and https+ALPN h2 upstreams, flow control under load, rapid reset, and the
GOAWAY of a graceful shutdown. Clients: httpx (with h2) and our own h2 client adapter for the
frame-level cases."""

from __future__ import annotations

import contextlib
import json
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import httpx
import pytest
from anyio.streams.tls import TLSStream
from hyperframe.frame import GoAwayFrame, RstStreamFrame

from a3s_gateway.compiler.schema import CertificateConfig, EntrypointConfig, TlsConfig
from a3s_gateway.runtime.api import Headers, Request, Response
from a3s_gateway.runtime.connection import ConnectionSettings, ConnectionTracker
from a3s_gateway.runtime.events import Body, EndOfBody, RequestHead, Reset, ResponseHead
from a3s_gateway.runtime.h2connection import H2Connection
from a3s_gateway.runtime.protocols.http2 import H2ClientConnection
from a3s_gateway.runtime.tls import client_context, server_context
from a3s_gateway.runtime.upstream.client import UpstreamClient

from .backends import backend, gateway, make_certs, proxy_to
from .stubs import eventually, h2_frames

pytestmark = pytest.mark.anyio
MiB = 1 << 20


@asynccontextmanager
async def h2c_gateway_to_backend() -> AsyncIterator[tuple[Any, int]]:
    async with backend() as b:
        client = UpstreamClient()
        async with gateway(proxy_to(b.url, client)) as server:
            yield b, server.addresses[0][1]
        await client.aclose()


async def test_h2c_prior_knowledge_to_an_http1_backend() -> None:
    async with h2c_gateway_to_backend() as (_, port), httpx.AsyncClient(http1=False, http2=True) as client:
        response = await client.post(
            f"http://127.0.0.1:{port}/json?x=1",
            content=b"payload",
            headers={"x-custom": "1", "te": "trailers"},
        )
        assert response.http_version == "HTTP/2"
        assert response.status_code == 200
        seen = response.json()
        assert seen["method"] == "POST" and seen["target"] == "/json?x=1" and seen["body"] == "payload"
        headers = dict(seen["headers"])
        assert headers["host"] == f"127.0.0.1:{port}"
        assert headers["x-custom"] == "1" and headers["content-length"] == "7"
        assert "keep-alive" not in response.headers and "connection" not in response.headers
        # HTTP/1.1 still works on the same entrypoint (sniffed, not configured).
        async with httpx.AsyncClient() as h1:
            plain = await h1.get(f"http://127.0.0.1:{port}/json")
        assert plain.http_version == "HTTP/1.1" and plain.status_code == 200


async def test_many_streams_on_one_connection_and_large_bodies() -> None:
    async with h2c_gateway_to_backend() as (b, port), httpx.AsyncClient(http1=False, http2=True) as client:
        connections = b.connections
        results: list[int] = []

        async def one(i: int) -> None:
            response = await client.get(f"http://127.0.0.1:{port}/json?i={i}")
            results.append(response.json()["target"] == f"/json?i={i}")

        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(one, i)
        assert sum(results) == 100
        upload = await client.post(f"http://127.0.0.1:{port}/upload", content=b"u" * (3 * MiB))
        assert upload.text == str(3 * MiB)
        big = await client.get(f"http://127.0.0.1:{port}/big?size={5 * MiB}")
        assert len(big.content) == 5 * MiB
        assert b.connections - connections >= 1


async def test_sse_events_are_not_held_back_over_h2() -> None:
    async with (
        h2c_gateway_to_backend() as (b, port),
        httpx.AsyncClient(http1=False, http2=True) as client,
        client.stream("GET", f"http://127.0.0.1:{port}/sse?n=3") as response,
    ):
        events = response.aiter_text()
        assert "event 0" in await anext(events)
        await b.step()
        assert "event 1" in await anext(events)
        await b.step()
        assert "event 2" in await anext(events)


async def test_tls_entrypoint_negotiates_h2_or_http1_by_alpn(tmp_path: Any) -> None:
    certs = make_certs(tmp_path, ["gw.test"])
    cert, key = certs.leaves["gw.test"]
    ctx = server_context(TlsConfig(certificates=[CertificateConfig(cert_file=cert, key_file=key)]))
    async with backend() as b:
        upstream = UpstreamClient()
        async with gateway(proxy_to(b.url, upstream), ssl_context=ctx) as server:
            port = server.addresses[0][1]
            verify = ssl.create_default_context(cafile=certs.ca_file)
            for http2, expected in ((True, "HTTP/2"), (False, "HTTP/1.1")):
                async with httpx.AsyncClient(http2=http2, verify=verify) as client:
                    response = await client.get(
                        f"https://127.0.0.1:{port}/json",
                        headers={"host": "gw.test"},
                        extensions={"sni_hostname": "gw.test"},
                    )
                    assert response.http_version == expected and response.status_code == 200
        await upstream.aclose()


# ------------------------------------------------------------------------------ h2 upstreams


async def _report(request: Request) -> Response:
    """An upstream that says which protocol reached it."""
    body = b""
    async for chunk in request.body:
        body += chunk
    data = json.dumps({"version": request.http_version, "target": request.target, "size": len(body)}).encode()
    return Response(200, Headers([(b"content-type", b"application/json")]), _once(data))


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


@asynccontextmanager
async def h2_upstream(ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[tuple[int, list[int]]]:
    """Our own HTTP/2 server as the upstream; yields its port and a connection counter."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    accepted = [0]
    settings = ConnectionSettings.from_config(EntrypointConfig(address="127.0.0.1:0"), scheme="http")

    async def handle(stream: anyio.abc.ByteStream) -> None:
        accepted[0] += 1
        if ssl_context is not None:
            stream = await TLSStream.wrap(stream, server_side=True, ssl_context=ssl_context)
        await H2Connection(stream, _report, settings, ConnectionTracker(), peer=("127.0.0.1", 0)).run()

    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield port, accepted
        tg.cancel_scope.cancel()


async def test_h2c_upstream_multiplexes_on_one_connection() -> None:
    async with h2_upstream() as (up_port, accepted):
        client = UpstreamClient()
        async with gateway(proxy_to(f"h2c://127.0.0.1:{up_port}", client)) as server:
            port = server.addresses[0][1]
            async with httpx.AsyncClient() as h1:  # HTTP/1.1 in, HTTP/2 out

                async def one(i: int) -> None:
                    response = await h1.post(f"http://127.0.0.1:{port}/r{i}", content=b"x" * i)
                    assert response.json() == {"version": "2", "target": f"/r{i}", "size": i}

                async with anyio.create_task_group() as tg:
                    for i in range(60):
                        tg.start_soon(one, i)
        await client.aclose()
        assert accepted[0] == 1  # 60 concurrent requests, one upstream connection


async def test_https_upstream_speaking_h2_via_alpn(tmp_path: Any) -> None:
    certs = make_certs(tmp_path, ["localhost"])
    cert, key = certs.leaves["localhost"]
    up_ctx = server_context(
        TlsConfig(certificates=[CertificateConfig(cert_file=cert, key_file=key)]), alpn=("h2", "http/1.1")
    )
    async with h2_upstream(up_ctx) as (up_port, accepted):
        client = UpstreamClient(ssl_context=client_context(cafile=certs.ca_file))
        async with gateway(proxy_to(f"https://localhost:{up_port}", client)) as server:
            port = server.addresses[0][1]
            async with httpx.AsyncClient() as h1:
                for i in range(3):
                    response = await h1.get(f"http://127.0.0.1:{port}/t{i}")
                    assert response.json()["version"] == "2"
        await client.aclose()
        assert accepted[0] == 1


# ------------------------------------------------------------------------------ frame level


async def _raw_h2(port: int) -> tuple[anyio.abc.ByteStream, H2ClientConnection]:
    stream = await anyio.connect_tcp("127.0.0.1", port)
    client = H2ClientConnection()
    await stream.send(client.data_to_send())
    return stream, client


async def test_a_broken_preface_on_an_h2c_port_gets_goaway_protocol_error() -> None:
    """The preface's request line and then other bytes: an HTTP/2 client with a broken preface,
    a connection error PROTOCOL_ERROR (RFC 9113 §3.4), not an HTTP/1.1 request to answer."""
    async with h2c_gateway_to_backend() as (b, port):
        stream = await anyio.connect_tcp("127.0.0.1", port)
        await stream.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\rQ")
        received = b""
        with anyio.fail_after(10):
            while True:
                try:
                    received += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break  # the gateway closed after its GOAWAY
        await stream.aclose()
        assert not received.startswith(b"HTTP/1.1")
        goaways = [f for f in h2_frames(received) if isinstance(f, GoAwayFrame)]
        assert len(goaways) == 1 and goaways[0].error_code == 0x1  # PROTOCOL_ERROR
        assert not b.seen


async def _exchange(port: int, head_of: Any) -> list[Any]:
    """Open one stream with `head_of(sid)` and read until its response ends or it is reset."""
    stream, client = await _raw_h2(port)
    sid = client.open_stream()
    await stream.send(client.send(head_of(sid), end_stream=True))
    got: list[Any] = []
    with anyio.fail_after(10):
        while not any(isinstance(e, EndOfBody | Reset) for e in got):
            got.extend(client.receive_data(await stream.receive(), time.monotonic()))
    await stream.aclose()
    return got


@pytest.mark.parametrize(
    ("method", "target"),
    [
        (b"GET", b"/a b"),  # RFC 9112 §3.2: a request-target holds no space
        (b"GET", b"/a\tb"),
        (b"GET", b"/a\x7fb"),
        (b"GET", b"/caf\xc3\xa9"),  # raw UTF-8: not visible ASCII (RFC 3986 §2)
        (b"GET", b"a"),  # RFC 9113 §8.3.1: origin-form, or * for OPTIONS
        (b"GET", b"*"),
        (b"G T", b"/"),  # a method is a token (RFC 9110 §9.1)
        (b"G\xc3\xa9T", b"/"),  # not even ASCII: still a 400, not a failed stream
    ],
)
async def test_an_invalid_request_line_gets_400_not_500(method: bytes, target: bytes) -> None:
    async with h2c_gateway_to_backend() as (b, port):
        got = await _exchange(port, lambda sid: RequestHead(sid, method, target, [(b"host", b"gw")]))
        heads = [e for e in got if isinstance(e, ResponseHead)]
        assert [h.status for h in heads] == [400]
        body = b"".join(e.data for e in got if isinstance(e, Body))
        assert json.loads(body)["error"]["status"] == 400
        assert not b.seen  # never dispatched
        # OPTIONS * is the one target that is not origin-form (RFC 9113 §8.3.1).
        ok = await _exchange(port, lambda sid: RequestHead(sid, b"OPTIONS", b"*", [(b"host", b"gw")]))
        assert [e.status for e in ok if isinstance(e, ResponseHead)] == [200]


async def test_rapid_reset_gets_goaway_and_starts_little_work() -> None:
    async with h2c_gateway_to_backend() as (b, port):
        stream, client = await _raw_h2(port)
        before = len(b.seen)
        data = b""
        for _ in range(300):
            sid = client.open_stream()
            data += client.send(RequestHead(sid, b"GET", b"/json", [(b"host", b"gw")]))
            data += client.send(Reset(sid, 8))
        goaway: GoAwayFrame | None = None
        with anyio.fail_after(10):
            await stream.send(data)
            received = b""
            while goaway is None:
                try:
                    received += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break
                goaway = next((f for f in h2_frames(received) if isinstance(f, GoAwayFrame)), None)
        await stream.aclose()
        assert goaway is not None and goaway.error_code == 0xB  # ENHANCE_YOUR_CALM
        assert len(b.seen) - before < 50


class _H2Client:
    """A client on the h2 package over one real connection, for h2load-style floods: it reads
    concurrently (acknowledging DATA), records every h2 event and the GOAWAY it gets."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.goaway: list[int] = []
        self.events: list[h2.events.Event] = []
        self.closed = anyio.Event()
        self._lock = anyio.Lock()

    async def flush(self) -> None:
        async with self._lock:
            data = self.conn.data_to_send()
            if data:
                await self.stream.send(data)

    def open(self, path: bytes) -> int:
        sid = self.conn.get_next_available_stream_id()
        head = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", path), (b":authority", b"gw")]
        self.conn.send_headers(sid, head, end_stream=True)
        return sid

    async def read(self) -> None:
        try:
            while True:
                data = await self.stream.receive()
                for ev in self.conn.receive_data(data):
                    self.events.append(ev)
                    if isinstance(ev, h2.events.ConnectionTerminated):
                        self.goaway.append(int(ev.error_code or 0))
                    elif isinstance(ev, h2.events.DataReceived):
                        self.conn.acknowledge_received_data(ev.flow_controlled_length or 0, ev.stream_id or 0)
                if not self.goaway:
                    await self.flush()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        finally:
            self.closed.set()


async def test_a_reset_flood_spread_over_many_reads_gets_goaway_and_bounded_work() -> None:
    """Rapid reset without the same-read shortcut: batches of 10 streams, 4 of them (to a backend
    path that holds its request) reset one batch later, so each reset arrives in a later read than
    its HEADERS and its handler has started. 40 % of streams stays under the per-streams share
    (100 of 200) forever; the time budget must end the connection, and what it started ends."""
    async with backend() as b:
        upstream = UpstreamClient()
        async with gateway(proxy_to(b.url, upstream)) as server:
            stream = await anyio.connect_tcp("127.0.0.1", server.addresses[0][1])
            client = _H2Client(stream)
            client.conn.initiate_connection()
            await client.flush()
            total = 3000
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.read)
                held: list[int] = []
                with contextlib.suppress(h2.exceptions.ProtocolError):  # the client saw GOAWAY
                    for _ in range(total // 10):
                        while client.conn.open_outbound_streams > 80 and not client.closed.is_set():
                            await anyio.sleep(0.001)  # h2load -m: within the server's stream limit
                        if client.goaway or client.closed.is_set():
                            break
                        opened = [client.open(b"/stall" if i < 4 else b"/json") for i in range(10)]
                        for sid in held:
                            with contextlib.suppress(h2.exceptions.StreamClosedError):
                                client.conn.reset_stream(sid, 0x8)  # CANCEL
                        held = opened[:4]
                        await client.flush()
                with anyio.fail_after(20):
                    await client.closed.wait()  # the gateway closes after its GOAWAY
                tg.cancel_scope.cancel()
            await stream.aclose()
            assert client.goaway == [0xB]  # ENHANCE_YOUR_CALM
            assert len(b.seen) < total // 2  # the flood was stopped early, not served
            # Every exchange the flood started is closed: nothing is left in flight upstream.
            await eventually(lambda: server.statistics().in_flight == 0)
            await eventually(lambda: b.abandoned == sum(s.target == "/stall" for s in b.seen))
        await upstream.aclose()


async def test_a_stream_the_client_never_opens_a_window_for_is_reset_after_idle() -> None:
    """SETTINGS_INITIAL_WINDOW_SIZE = 0, never opened: the response's first bytes can never go
    out. After the entrypoint's idle timeout the stream is reset and its upstream exchange closed
    (as HTTP/1.1's write deadline does), instead of holding both forever."""
    async with backend() as b:
        upstream = UpstreamClient()
        async with gateway(proxy_to(b.url, upstream), timeouts={"idle": 0.5}) as server:
            stream = await anyio.connect_tcp("127.0.0.1", server.addresses[0][1])
            client = _H2Client(stream)
            client.conn.initiate_connection()
            client.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
            sid = client.open(b"/stall-body")  # a head, 5 bytes of body, then it waits
            await client.flush()
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.read)

                def reset() -> list[h2.events.StreamReset]:
                    return [e for e in client.events if isinstance(e, h2.events.StreamReset)]

                await eventually(lambda: bool(reset()))
                assert [(e.stream_id, e.error_code) for e in reset()] == [(sid, 0x8)]  # CANCEL
                assert any(isinstance(e, h2.events.ResponseReceived) for e in client.events)
                assert not any(isinstance(e, h2.events.DataReceived) for e in client.events)
                await eventually(lambda: b.abandoned == 1)  # the backend saw its exchange closed
                await eventually(lambda: server.statistics().in_flight == 0)
                # The connection itself is still served.
                client.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 65535})
                ok = client.open(b"/json")
                await client.flush()
                await eventually(
                    lambda: any(
                        isinstance(e, h2.events.StreamEnded) and e.stream_id == ok for e in client.events
                    )
                )
                tg.cancel_scope.cancel()
            await stream.aclose()
        await upstream.aclose()


async def test_graceful_shutdown_sends_goaway_and_finishes_streams() -> None:
    async with backend() as b:
        upstream = UpstreamClient()
        async with gateway(proxy_to(b.url, upstream)) as server:
            port = server.addresses[0][1]
            stream, client = await _raw_h2(port)
            sid = client.open_stream()
            await stream.send(client.send(RequestHead(sid, b"GET", b"/sse?n=2", [(b"host", b"gw")])))
            got: list[Any] = []

            async def read_until(pred: Any) -> None:
                with anyio.fail_after(10):
                    while not pred():
                        data = await stream.receive()
                        got.extend(client.receive_data(data, time.monotonic()))
                        out = client.data_to_send()
                        if out:
                            await stream.send(out)

            await read_until(lambda: any(isinstance(e, Body) for e in got))
            async with anyio.create_task_group() as tg:
                tg.start_soon(server.drain, 10.0)
                await read_until(lambda: client.peer_goaway is not None)
                assert client.peer_goaway is not None and client.peer_goaway.last_stream_id == sid
                await b.step()
                await read_until(lambda: any(isinstance(e, EndOfBody) for e in got))
            assert b"".join(e.data for e in got if isinstance(e, Body)).count(b"data: event") == 2
            assert any(isinstance(e, ResponseHead) and e.status == 200 for e in got)
            assert not any(isinstance(e, RstStreamFrame) for e in got)
            await stream.aclose()
        await upstream.aclose()
