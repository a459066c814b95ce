"""TCP routers and TLS: SNI routing with passthrough, termination by SNI-chosen certificates, and
the ClientHello peek under bad input. Clients: Python's ssl, `openssl s_client` and curl."""

from __future__ import annotations

import shutil
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import pytest

from .backends import Certs, make_certs
from .stubs import eventually
from .tcp_peers import closed_without_data, echo_server, free_port, read_exactly, serving
from .tls_hellos import client_hello, split_records

pytestmark = pytest.mark.anyio


def server_ctx(certs: Certs, name: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*certs.leaves[name])
    return ctx


def config(port: int, a: int, b: int, plain: int, certs: Certs | None = None, terminate: int = 0) -> str:
    tls = ""
    if certs is not None:
        (c1, k1), (c2, k2) = certs.leaves["t1.test"], certs.leaves["t2.test"]
        tls = f"""tls {{
    certificates = [{{ cert_file = "{c1}", key_file = "{k1}" }}, {{ cert_file = "{c2}", key_file = "{k2}" }}]
  }}"""
    terminating = ""
    if terminate:
        terminating = f"""
tcp_routers "terminated" {{
  rule    = "HostSNI(`t1.test`) || HostSNI(`t2.test`)"
  service = "plain-text"
  tls {{}}
}}
services "plain-text" {{
  load_balancer {{ servers = [{{ address = "127.0.0.1:{terminate}" }}] }}
}}
"""
    return f"""
entrypoints "tls-in" {{
  address  = "127.0.0.1:{port}"
  protocol = "tcp"
  timeouts {{ read_header = "1s" }}
  {tls}
}}
tcp_routers "a" {{
  rule    = "HostSNI(`a.test`)"
  service = "a"
  tls {{ passthrough = true }}
}}
tcp_routers "b" {{
  rule    = "HostSNI(`*.b.test`) && ALPN(`h2`)"
  service = "b"
  tls {{ passthrough = true }}
}}
routers "plain" {{
  rule        = "HostSNI(`*`)"
  service     = "plain"
  entrypoints = ["tls-in"]
}}
services "a" {{
  load_balancer {{ servers = [{{ address = "127.0.0.1:{a}" }}] }}
}}
services "b" {{
  load_balancer {{ servers = [{{ address = "127.0.0.1:{b}" }}] }}
}}
services "plain" {{
  load_balancer {{ servers = [{{ address = "127.0.0.1:{plain}" }}] }}
}}
{terminating}
"""


async def tls_talk(port: int, certs: Certs, name: str, alpn: list[str] | None = None) -> str:
    """Connect with TLS for `name` (verified against the test CA), echo a line; the peer's name."""
    ctx = ssl.create_default_context(cafile=certs.ca_file)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    stream = await anyio.connect_tcp(
        "127.0.0.1", port, tls=True, ssl_context=ctx, tls_hostname=name, tls_standard_compatible=False
    )
    async with stream:
        peer = stream.extra(anyio.streams.tls.TLSAttribute.peer_certificate)
        await stream.send(b"hello over tls")
        assert await read_exactly(stream, 14) == b"hello over tls"
        return str(dict(x[0] for x in peer["subject"])["commonName"])


async def test_sni_routes_and_passthrough_forwards_the_encrypted_bytes(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, ["a.test", "x.b.test"])
    async with (
        echo_server("a", ssl_context=server_ctx(certs, "a.test")) as a,
        echo_server("b", ssl_context=server_ctx(certs, "x.b.test")) as b,
        echo_server("plain") as plain,
    ):
        port = free_port()
        async with serving(tmp_path, config(port, a.port, b.port, plain.port)):
            # The backends' own certificates reach the client: the gateway did not touch TLS.
            assert await tls_talk(port, certs, "a.test") == "a.test"
            assert await tls_talk(port, certs, "A.Test") == "a.test"
            assert await tls_talk(port, certs, "x.b.test", ["h2"]) == "x.b.test"
            assert (a.connections, b.connections) == (1 + 1, 1)
            # A TLS client no TLS router takes is closed (the plaintext catch-all is not for it).
            for hello in (
                client_hello("x.b.test", ("http/1.1",)),
                client_hello("c.test"),
                client_hello(None),
            ):
                async with await anyio.connect_tcp("127.0.0.1", port) as client:
                    await client.send(hello)
                    assert await closed_without_data(client)
            # A plaintext client gets the HostSNI(`*`) router without tls.
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                await client.send(b"PING\r\n")
                assert await read_exactly(client, 6) == b"PING\r\n"
            assert plain.connections == 1


async def test_a_client_hello_split_across_segments_and_records_is_replayed_untouched(tmp_path: Path) -> None:
    async with echo_server("a") as a, echo_server("plain") as plain:
        port = free_port()
        async with serving(tmp_path, config(port, a.port, a.port, plain.port)):
            hello = split_records(client_hello("a.test"), 50)
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                for i in range(0, len(hello), 7):  # 7-byte writes, with TCP_NODELAY: many segments
                    await client.send(hello[i : i + 7])
                    await anyio.sleep(0)
                # The echo backend returns exactly what the gateway forwarded: every byte peeked.
                assert await read_exactly(client, len(hello)) == hello


@pytest.mark.parametrize(
    "opening",
    [
        b"\x80\x2e\x01\x03\x01" + b"\x00" * 60,  # an SSLv2 hello
        b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00",  # a handshake that is not a ClientHello
        b"\x16\x03\x01\x40\x00\x01\x01\x00\x00" + b"\x00" * 16000,  # announces a 64 KiB hello
        b"\x16\x03\x01\x00\x20",  # a truncated hello, then silence (read_header: 1s)
        b"",  # nothing at all
    ],
    ids=["sslv2", "not-a-client-hello", "oversized", "truncated", "silent"],
)
async def test_bad_openings_are_closed_and_leave_nothing_behind(tmp_path: Path, opening: bytes) -> None:
    async with echo_server("a") as a, echo_server("plain") as plain:
        port = free_port()
        async with serving(tmp_path, config(port, a.port, a.port, plain.port)) as gateway:
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                if opening:
                    await client.send(opening)
                assert await closed_without_data(client)
            await eventually(lambda: gateway.health()["entrypoints"]["tls-in"]["connections"] == 0)
            assert (a.connections, plain.connections) == (0, 0)
            assert gateway.graph.active == 0
            # And the gateway still serves others.
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                await client.send(b"ok?")
                assert await read_exactly(client, 3) == b"ok?"


async def test_tls_is_terminated_with_the_certificate_the_sni_names(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, ["t1.test", "t2.test", "a.test"])
    async with echo_server("a", ssl_context=server_ctx(certs, "a.test")) as a, echo_server("text") as text:
        port = free_port()
        async with serving(tmp_path, config(port, a.port, a.port, text.port, certs, terminate=text.port)):
            assert await tls_talk(port, certs, "t1.test") == "t1.test"
            assert await tls_talk(port, certs, "t2.test") == "t2.test"
            # The backend saw plaintext (the echo server speaks no TLS).
            assert text.firsts[-2:] == [b"hello over tls", b"hello over tls"]
            assert await tls_talk(port, certs, "a.test") == "a.test"  # passthrough on the same port


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
async def test_openssl_s_client_through_termination_and_passthrough(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, ["t1.test", "t2.test", "a.test"])
    async with echo_server("a", ssl_context=server_ctx(certs, "a.test")) as a, echo_server("text") as text:
        port = free_port()
        async with serving(tmp_path, config(port, a.port, a.port, text.port, certs, terminate=text.port)):
            for name in ("t2.test", "a.test"):
                with anyio.fail_after(20):
                    assert await s_client(port, name, certs.ca_file) == b"through openssl\n"


async def s_client(port: int, name: str, ca_file: str) -> bytes:
    """Send a line through `openssl s_client` (verifying `name` against the CA), read the echo."""
    command = [
        "openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name,
        "-CAfile", ca_file, "-verify_return_error", "-verify_hostname", name, "-quiet",
    ]  # fmt: skip
    async with await anyio.open_process(command) as process:
        assert process.stdin is not None and process.stdout is not None
        await process.stdin.send(b"through openssl\n")
        out = b""
        while not out.endswith(b"\n"):
            out += await process.stdout.receive()
        process.terminate()
        return out


@contextmanager
def https_server(certs: Certs, name: str) -> Iterator[int]:
    class Hello(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"hello from the https backend\n"
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    server.socket = server_ctx(certs, name).wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_https_through_passthrough(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, ["a.test"])
    with https_server(certs, "a.test") as https:
        async with echo_server("plain") as plain:
            port = free_port()
            async with serving(tmp_path, config(port, https, https, plain.port)):
                result = await anyio.run_process(
                    [
                        "curl",
                        "-sS",
                        "--cacert",
                        certs.ca_file,
                        "--resolve",
                        f"a.test:{port}:127.0.0.1",
                        f"https://a.test:{port}/",
                    ],
                    check=False,
                )
                assert result.stdout == b"hello from the https backend\n", result.stderr


def test_terminate_needs_certificates_and_a_known_cert_resolver(tmp_path: Path) -> None:
    from a3s_gateway.compiler import compile_config

    path = tmp_path / "gw.hcl"
    text = config(free_port(), 1, 2, 3, terminate=4)
    path.write_text(text)
    errors = [d.message for d in compile_config([str(path)], {}).diagnostics.errors]
    assert any("terminates TLS but entrypoint 'tls-in' has no tls block" in e for e in errors), errors
    path.write_text(text.replace("tls {}", 'tls { cert_resolver = "le" }'))
    errors = [d.message for d in compile_config([str(path)], {}).diagnostics.errors]
    assert any("TCP router 'terminated' uses unknown certificate resolver 'le'" in e for e in errors), errors
    path.write_text(config(1, 1, 2, 3).replace("tls { passthrough = true }", "", 1))
    errors = [d.message for d in compile_config([str(path)], {}).diagnostics.errors]
    assert any("reads the TLS ClientHello" in e and "no tls block" in e for e in errors), errors
