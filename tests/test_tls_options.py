"""TLS options chosen by SNI (`tls_options`, routers' `tls { options }`): real TLS clients (Python's
ssl, curl, openssl s_client) against one HTTPS entrypoint whose hosts ask for different options,
a TCP entrypoint terminating TLS, and reloads."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import anyio
import pytest
from anyio.streams.tls import TLSAttribute

from .backends import Certs, client_identity, make_certs
from .stubs import free_port
from .tcp_peers import closed_without_data, echo_server, read_exactly, serving

pytestmark = pytest.mark.anyio

HOSTS = ["modern.test", "legacy.test", "mtls.test", "old.test"]


def certificates(certs: Certs) -> str:
    return ", ".join(
        f'{{ cert_file = "{c}", key_file = "{k}" }}' for c, k in (certs.leaves[h] for h in HOSTS)
    )


def config(port: int, certs: Certs, client_ca: str, *, modern: str = "modern") -> str:
    return f"""
entrypoints "websecure" {{
  address = "127.0.0.1:{port}"
  tls {{ certificates = [{certificates(certs)}] }}
}}
tls_options "modern" {{ min_version = "1.3" }}
tls_options "old" {{
  max_version   = "1.2"
  cipher_suites = ["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"]
}}
tls_options "mtls" {{
  client_auth {{ ca_files = ["{client_ca}"] }}
}}
routers "modern" {{
  rule    = "Host(`modern.test`) && Path(`/ping`)"
  service = "ping@internal"
  tls {{ options = "{modern}" }}
}}
routers "legacy" {{
  rule    = "Host(`legacy.test`) && Path(`/ping`)"
  service = "ping@internal"
}}
routers "mtls" {{
  rule    = "Host(`mtls.test`) && Path(`/ping`)"
  service = "ping@internal"
  tls {{ options = "mtls" }}
}}
routers "old" {{
  rule    = "Host(`old.test`) && Path(`/ping`)"
  service = "ping@internal"
  tls {{ options = "old" }}
}}
"""


def client(
    certs: Certs,
    *,
    max_version: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
    identity: tuple[str, str] | None = None,
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=certs.ca_file)
    if max_version is not None:
        ctx.maximum_version = max_version
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    if identity is not None:
        ctx.load_cert_chain(*identity)
    return ctx


async def get(port: int, ctx: ssl.SSLContext, sni: str | None, host: str | None = None) -> tuple[str, str]:
    """GET /ping over TLS with `sni` (Host: `host`, default the SNI): (status line, TLS version)."""
    stream = await anyio.connect_tcp(
        "127.0.0.1", port, tls=True, ssl_context=ctx, tls_hostname=sni, tls_standard_compatible=False
    )
    async with stream:
        version = stream.extra(TLSAttribute.ssl_object).version() or ""
        head = f"GET /ping HTTP/1.1\r\nHost: {host or sni}\r\nConnection: close\r\n\r\n"
        await stream.send(head.encode())
        data = b""
        with anyio.fail_after(10):
            while b"\r\n" not in data:
                data += await stream.receive()
        return data.split(b"\r\n", 1)[0].decode(), version


async def refused(port: int, ctx: ssl.SSLContext, sni: str | None) -> bool:
    """Whether the handshake (or, with TLS 1.3 client certificates, the first read) fails."""
    try:
        await get(port, ctx, sni)
    except (ssl.SSLError, anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
        return True
    return False


async def test_a_tls13_host_refuses_a_tls12_client_that_another_host_accepts(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, HOSTS)
    client_ca, _, _ = client_identity(tmp_path)
    port = free_port()
    async with serving(tmp_path, config(port, certs, client_ca)):
        tls12 = client(certs, max_version=ssl.TLSVersion.TLSv1_2)
        assert await get(port, tls12, "legacy.test") == ("HTTP/1.1 200 OK", "TLSv1.2")
        assert await refused(port, tls12, "modern.test")
        assert await refused(port, tls12, "Modern.Test.")  # SNI compared as a DNS name
        assert await get(port, client(certs), "modern.test") == ("HTTP/1.1 200 OK", "TLSv1.3")


async def test_max_version_and_cipher_suites_apply_to_their_host_only(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, HOSTS)
    client_ca, _, _ = client_identity(tmp_path)
    port = free_port()
    async with serving(tmp_path, config(port, certs, client_ca)):
        # A TLS 1.3 client is held to 1.2 on old.test, with the one suite it allows.
        stream = await anyio.connect_tcp(
            "127.0.0.1",
            port,
            tls=True,
            ssl_context=client(certs),
            tls_hostname="old.test",
            tls_standard_compatible=False,
        )
        async with stream:
            ssl_object = stream.extra(TLSAttribute.ssl_object)
            assert ssl_object.version() == "TLSv1.2"
            assert ssl_object.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"
        other = client(certs, max_version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
        assert await refused(port, other, "old.test")
        assert (await get(port, other, "legacy.test"))[0] == "HTTP/1.1 200 OK"


async def test_client_certificates_are_required_on_one_host(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, HOSTS)
    client_ca, cert, key = client_identity(tmp_path)
    port = free_port()
    async with serving(tmp_path, config(port, certs, client_ca)):
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            anonymous = client(certs, max_version=version)
            assert await refused(port, anonymous, "mtls.test")
            assert (await get(port, anonymous, "legacy.test"))[0] == "HTTP/1.1 200 OK"
            alice = client(certs, max_version=version, identity=(cert, key))
            assert (await get(port, alice, "mtls.test"))[0] == "HTTP/1.1 200 OK"


async def test_sni_strict_refuses_no_sni_and_unknown_names(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, HOSTS)
    port = free_port()
    text = f"""
entrypoints "websecure" {{
  address = "127.0.0.1:{port}"
  tls {{ certificates = [{certificates(certs)}] }}
}}
tls_options "default" {{ sni_strict = true }}
routers "legacy" {{
  rule    = "Path(`/ping`)"
  service = "ping@internal"
}}
"""
    async with serving(tmp_path, text):
        ctx = client(certs)
        assert (await get(port, ctx, "legacy.test"))[0] == "HTTP/1.1 200 OK"
        unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
        assert await refused(port, unverified, None)
        assert await refused(port, unverified, "unknown.test")


async def test_a_reload_swaps_the_options_of_a_host(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, HOSTS)
    client_ca, _, _ = client_identity(tmp_path)
    port = free_port()
    tls12 = client(certs, max_version=ssl.TLSVersion.TLSv1_2)
    async with serving(tmp_path, config(port, certs, client_ca)) as gateway:
        assert await refused(port, tls12, "modern.test")
        path = tmp_path / "gw.hcl"
        path.write_text(config(port, certs, client_ca, modern="old"))
        await gateway.reload()
        assert await get(port, tls12, "modern.test") == ("HTTP/1.1 200 OK", "TLSv1.2")
        # A reload that fails (an unknown option) changes nothing.
        path.write_text(config(port, certs, client_ca, modern="nope"))
        with pytest.raises(Exception, match="unknown TLS options 'nope'"):
            await gateway.reload()
        assert await get(port, tls12, "modern.test") == ("HTTP/1.1 200 OK", "TLSv1.2")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_tls_max_and_tlsv13(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, HOSTS)
    client_ca, _, _ = client_identity(tmp_path)
    port = free_port()

    async def curl(host: str, *flags: str) -> int:
        command = [
            "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", certs.ca_file,
            "--resolve", f"{host}:{port}:127.0.0.1", *flags, f"https://{host}:{port}/ping",
        ]  # fmt: skip
        result = await anyio.run_process(command, check=False)
        return result.returncode

    async with serving(tmp_path, config(port, certs, client_ca)):
        assert await curl("modern.test", "--tls-max", "1.2") == 35  # handshake refused
        assert await curl("legacy.test", "--tls-max", "1.2") == 0
        assert await curl("modern.test", "--tlsv1.3") == 0
        assert await curl("old.test", "--tlsv1.3") == 35  # old.test stops at 1.2


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
async def test_openssl_s_client_through_a_tcp_router_with_options(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, HOSTS)
    async with echo_server("text") as text:
        port = free_port()
        (c1, k1), (c2, k2) = certs.leaves["modern.test"], certs.leaves["legacy.test"]
        gateway = f"""
entrypoints "tls-in" {{
  address  = "127.0.0.1:{port}"
  protocol = "tcp"
  tls {{ certificates = [{{ cert_file = "{c1}", key_file = "{k1}" }}, {{ cert_file = "{c2}", key_file = "{k2}" }}] }}
}}
tls_options "modern" {{ min_version = "1.3" }}
tcp_routers "modern" {{
  rule    = "HostSNI(`modern.test`)"
  service = "text"
  tls {{ options = "modern" }}
}}
tcp_routers "legacy" {{
  rule    = "HostSNI(`legacy.test`)"
  service = "text"
  tls {{}}
}}
services "text" {{
  load_balancer {{ servers = [{{ address = "127.0.0.1:{text.port}" }}] }}
}}
"""
        async with serving(tmp_path, gateway):
            assert await s_client(port, "legacy.test", certs.ca_file, "-tls1_2") == b"through openssl\n"
            assert await s_client(port, "modern.test", certs.ca_file, "-tls1_3") == b"through openssl\n"
            assert await s_client(port, "modern.test", certs.ca_file, "-tls1_2") == b""
            ctx = client(certs, max_version=ssl.TLSVersion.TLSv1_2)
            stream = await anyio.connect_tcp(
                "127.0.0.1",
                port,
                tls=True,
                ssl_context=ctx,
                tls_hostname="legacy.test",
                tls_standard_compatible=False,
            )
            async with stream:
                await stream.send(b"ping")
                assert await read_exactly(stream, 4) == b"ping"


async def s_client(port: int, name: str, ca_file: str, version: str) -> bytes:
    """A line through `openssl s_client` at one TLS version; b"" when the handshake fails."""
    command = [
        "openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name, version,
        "-CAfile", ca_file, "-verify_return_error", "-quiet",
    ]  # fmt: skip
    with anyio.fail_after(20):
        async with await anyio.open_process(command) as process:
            assert process.stdin is not None and process.stdout is not None
            await process.stdin.send(b"through openssl\n")
            data = b""
            try:
                while len(data) < 16:
                    data += await process.stdout.receive()
            except anyio.EndOfStream:
                pass
            if process.returncode is None:
                try:
                    process.terminate()
                except ProcessLookupError:
                    pass  # it has just exited
            return data


async def test_a_host_with_other_options_than_the_sni_is_misdirected(tmp_path: Path) -> None:
    """Domain fronting across options: a handshake under legacy.test's options (no client
    certificate) cannot ask for mtls.test, which requires one (421, as Traefik answers)."""
    certs = make_certs(tmp_path, HOSTS)
    client_ca, _, _ = client_identity(tmp_path)
    port = free_port()
    async with serving(tmp_path, config(port, certs, client_ca)):
        anonymous = client(certs)
        assert (await get(port, anonymous, "legacy.test", "mtls.test"))[
            0
        ] == "HTTP/1.1 421 Misdirected Request"
        assert (await get(port, anonymous, "legacy.test", "modern.test:443"))[0].startswith("HTTP/1.1 421")
        assert (await get(port, anonymous, "modern.test", "legacy.test"))[0].startswith("HTTP/1.1 421")
        # Hosts with the same options may share a connection (here: the default options).
        assert (await get(port, anonymous, "legacy.test", "LEGACY.test:443"))[0] == "HTTP/1.1 200 OK"


@pytest.mark.parametrize(
    "opening",
    [b"GET /ping HTTP/1.1\r\nHost: legacy.test\r\n\r\n", b"\x80\x2e\x01\x03\x01" + b"\x00" * 60, b""],
    ids=["plaintext", "sslv2", "silent-then-closed"],
)
async def test_bad_openings_on_an_entrypoint_with_options_are_closed(tmp_path: Path, opening: bytes) -> None:
    certs = make_certs(tmp_path, HOSTS)
    client_ca, _, _ = client_identity(tmp_path)
    port = free_port()
    async with serving(tmp_path, config(port, certs, client_ca)):
        async with await anyio.connect_tcp("127.0.0.1", port) as raw:
            await raw.send(opening)
            await raw.send_eof()
            assert await closed_without_data(raw)
        assert (await get(port, client(certs), "legacy.test"))[0] == "HTTP/1.1 200 OK"


async def key_exchange(port: int, name: str, ca_file: str, groups: str, *flags: str) -> str | None:
    """The group `openssl s_client -groups` negotiated with `name` ("X25519", "prime256v1"...),
    None when the handshake fails."""
    command = [
        "openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name, "-groups", groups,
        "-CAfile", ca_file, "-verify_return_error", "-brief", *flags,
    ]  # fmt: skip
    with anyio.fail_after(20):
        result = await anyio.run_process(command, check=False, stdin=subprocess.DEVNULL)
    output = (result.stdout + result.stderr).decode()
    if "CONNECTION ESTABLISHED" not in output:
        return None
    # "Server Temp Key: X25519, 253 bits" / "Server Temp Key: ECDH, prime256v1, 256 bits"
    line = next(x for x in output.splitlines() if x.startswith("Server Temp Key:"))
    return line.split(":", 1)[1].split(",")[-2].strip()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
async def test_curve_preferences_choose_the_key_exchange_of_their_host(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, HOSTS)
    port = free_port()
    text = f"""
entrypoints "websecure" {{
  address = "127.0.0.1:{port}"
  tls {{ certificates = [{certificates(certs)}] }}
}}
tls_options "p256" {{ curve_preferences = ["CurveP256"] }}
tls_options "ordered" {{
  max_version       = "1.2"
  curve_preferences = ["CurveP384", "X25519", "CurveP256"]
}}
routers "modern" {{
  rule    = "Host(`modern.test`)"
  service = "ping@internal"
  tls {{ options = "p256" }}
}}
routers "old" {{
  rule    = "Host(`old.test`)"
  service = "ping@internal"
  tls {{ options = "ordered" }}
}}
routers "legacy" {{
  rule    = "Host(`legacy.test`)"
  service = "ping@internal"
}}
"""
    async with serving(tmp_path, text):
        ca = certs.ca_file
        assert await key_exchange(port, "modern.test", ca, "X25519") is None
        assert await key_exchange(port, "modern.test", ca, "P-256") == "prime256v1"
        assert await key_exchange(port, "modern.test", ca, "X25519:P-256") == "prime256v1"  # via a retry
        # Another host of the entrypoint keeps OpenSSL's groups.
        assert await key_exchange(port, "legacy.test", ca, "X25519") == "X25519"
        # TLS 1.2: the list's order is the server's preference over the client's.
        assert await key_exchange(port, "old.test", ca, "X25519:P-256:P-384", "-tls1_2") == "secp384r1"
