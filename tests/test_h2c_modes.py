"""The three cleartext modes of a plain entrypoint (`h2c`), with raw bytes on real sockets.

* "auto" (the default): HTTP/1.1 and HTTP/2 with prior knowledge on one port, told apart by
  the first bytes (tests/test_http2_proxy.py and tests/test_h2spec.py cover it).
* "prior-knowledge": HTTP/2 only. The connection must open with the preface; anything else, an
  HTTP/1.1 request included, is a connection error PROTOCOL_ERROR: GOAWAY, then close
  (RFC 9113 §3.4), as Envoy's `codec_type: HTTP2` and HAProxy's `proto h2` answer.
* "off": HTTP/1.1 only. The preface is read as the HTTP/1.1 request line `PRI * HTTP/2.0`
  and answered as nginx without http2 answers it: 400 and close. `Upgrade: h2c` is not
  offered in any mode, so such a request is served as HTTP/1.1.

The last test compiles an HCL config and runs a Gateway on it, so the key is seen to travel
from the config through the IR to the listener.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from hyperframe.frame import GoAwayFrame, SettingsFrame

from a3s_gateway.compiler.schema import EntrypointTimeouts
from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.runtime.protocols.negotiate import H2_PREFACE
from a3s_gateway.runtime.upstream.client import UpstreamClient

from .backends import Backend, RawClient, backend, gateway, proxy_to
from .stubs import eventually, free_port, h2_frames

pytestmark = pytest.mark.anyio

HTTP1_GET = b"GET /json HTTP/1.1\r\nhost: gw.test\r\n\r\n"


async def _send_and_read_all(port: int, data: bytes) -> bytes:
    """Send `data` and read until the gateway closes the connection."""
    received = b""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        if data:
            await stream.send(data)
        with anyio.fail_after(10):
            while True:
                try:
                    received += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return received


@asynccontextmanager
async def _gateway(h2c: str) -> AsyncIterator[tuple[Backend, int]]:
    async with backend() as b:
        client = UpstreamClient()
        async with gateway(proxy_to(b.url, client), h2c=h2c) as server:
            yield b, server.addresses[0][1]
        await client.aclose()


def _assert_goaway_protocol_error(received: bytes) -> None:
    assert not received.startswith(b"HTTP/1.1")
    frames = h2_frames(received)
    assert isinstance(frames[0], SettingsFrame)  # the server's preface (RFC 9113 §3.4)
    goaways = [f for f in frames if isinstance(f, GoAwayFrame)]
    assert len(goaways) == 1 and goaways[0].error_code == 0x1  # PROTOCOL_ERROR
    assert goaways[0].last_stream_id == 0


# ------------------------------------------------------------------ h2c = "prior-knowledge"


async def test_an_http1_request_to_a_prior_knowledge_port_gets_goaway() -> None:
    async with _gateway("prior-knowledge") as (b, port):
        _assert_goaway_protocol_error(await _send_and_read_all(port, HTTP1_GET))
        assert not b.seen


async def test_an_h2c_upgrade_to_a_prior_knowledge_port_gets_goaway() -> None:
    upgrade = (
        b"GET /json HTTP/1.1\r\nhost: gw.test\r\nconnection: Upgrade, HTTP2-Settings\r\n"
        b"upgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n\r\n"
    )
    async with _gateway("prior-knowledge") as (b, port):
        _assert_goaway_protocol_error(await _send_and_read_all(port, upgrade))
        assert not b.seen


async def test_a_prior_knowledge_port_gets_goaway_on_the_first_wrong_byte() -> None:
    """No waiting for 24 bytes: "G" already differs from the preface's "P"."""
    async with _gateway("prior-knowledge") as (b, port):
        _assert_goaway_protocol_error(await _send_and_read_all(port, b"G"))
        assert not b.seen


async def test_a_silent_client_on_a_prior_knowledge_port_is_cut_at_read_header() -> None:
    """The first bytes are awaited for `read_header`, as on the other modes, not for `idle`."""
    async with backend() as b:
        client = UpstreamClient()
        timeouts = EntrypointTimeouts(read_header=0.3, idle=60)
        async with gateway(proxy_to(b.url, client), h2c="prior-knowledge", timeouts=timeouts) as server:
            # Nothing sent: the gateway closes (its SETTINGS would wait for the client's preface).
            assert await _send_and_read_all(server.addresses[0][1], b"") == b""
            await eventually(lambda: server.statistics().connections == 0)
        await client.aclose()


async def test_a_prior_knowledge_port_serves_http2() -> None:
    async with (
        _gateway("prior-knowledge") as (b, port),
        httpx.AsyncClient(http1=False, http2=True) as client,
    ):
        r = await client.get(f"http://127.0.0.1:{port}/json")
        assert r.status_code == 200 and r.http_version == "HTTP/2"
        assert b.seen[-1].target == "/json"


# ------------------------------------------------------------------ h2c = "off"


async def test_the_h2_preface_to_an_off_port_gets_400() -> None:
    """Read as HTTP/1.1, the preface is the request line `PRI * HTTP/2.0`: a version this port
    does not speak and a target only OPTIONS may use. 400 and close, as nginx answers it on a
    listener without http2 (its parser refuses the `*` target with 400 before the version)."""
    async with _gateway("off") as (b, port):
        received = await _send_and_read_all(port, H2_PREFACE)
        assert received.startswith(b"HTTP/1.1 400 ")
        assert b"connection: close" in received.lower()
        assert not _frames_like(received)
        assert not b.seen


def _frames_like(received: bytes) -> bool:
    """Whether an HTTP/2 SETTINGS frame came first (bytes 3..4: type 0x4, as a server's preface)."""
    return len(received) >= 9 and received[3] == 0x4


async def test_an_h2c_upgrade_to_an_off_port_is_served_as_http1() -> None:
    async with _gateway("off") as (b, port), RawClient.connect(port) as client:
        await client.send(
            b"GET /json HTTP/1.1\r\nhost: gw.test\r\nconnection: Upgrade, HTTP2-Settings\r\n"
            b"upgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n\r\n"
        )
        reply = await client.read_response()
        assert reply.status == 200  # not 101 Switching Protocols
        assert reply.json()["target"] == "/json"
        # The connection stays HTTP/1.1: a second request on it is answered as one.
        await client.send(HTTP1_GET)
        assert (await client.read_response()).status == 200
        assert len(b.seen) == 2
        # Upgrade and HTTP2-Settings are hop-by-hop (named in Connection): not forwarded.
        assert b.seen[0].header("upgrade") is None
        assert b.seen[0].header("http2-settings") is None


async def test_an_off_port_serves_http1_with_keep_alive() -> None:
    async with _gateway("off") as (b, port), RawClient.connect(port) as client:
        for _ in range(2):
            await client.send(HTTP1_GET)
            assert (await client.read_response()).status == 200
        assert len(b.seen) == 2


# ------------------------------------------------------------------ through the config


def _config(port: int, upstream: str, h2c: str) -> str:
    return f"""
entrypoints "grpc" {{
  address = "127.0.0.1:{port}"
  h2c     = "{h2c}"
}}
routers "all" {{
  rule    = "PathPrefix(`/`)"
  service = "app"
}}
services "app" {{
  load_balancer {{ servers = [{{ url = "{upstream}" }}] }}
}}
"""


async def test_the_key_acts_through_the_compiled_config_and_a_reload(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "gw.hcl"
    async with backend() as be:
        path.write_text(_config(port, be.url, "prior-knowledge"))
        async with Gateway(str(path)) as gw:
            _assert_goaway_protocol_error(await _send_and_read_all(port, HTTP1_GET))
            async with httpx.AsyncClient(http1=False, http2=True) as client:
                assert (await client.get(f"http://127.0.0.1:{port}/json")).status_code == 200
            # A reload to "off": the same port now answers the preface as HTTP/1.1 would.
            path.write_text(_config(port, be.url, "off"))
            await gw.reload()
            assert (await _send_and_read_all(port, H2_PREFACE)).startswith(b"HTTP/1.1 400 ")
            async with RawClient.connect(port) as raw:
                await raw.send(HTTP1_GET)
                assert (await raw.read_response()).status == 200
