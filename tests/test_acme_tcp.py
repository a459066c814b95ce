"""ACME certificates for TLS-terminating TCP routers, against a real pebble: a TCP router's
HostSNI() names are ordered through the resolver it names, served from the live certificate
table on the TCP entrypoint (a self-signed fallback until then), and a real TLS client verifies
the chain against pebble's root and then talks to the echo backend through the router.

TLS-ALPN-01 is answered on the TCP entrypoint itself (pebble's tlsPort), before any router, so a
rule with an ALPN() matcher does not shadow it; DNS-01 (through challtestsrv) issues a wildcard
HostSNI. A reload keeps the issued certificate (the table outlives generations)."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import anyio
import pytest
from cryptography import x509

from a3s_gateway.runtime.gateway import Gateway

from .backends import make_certs
from .pebble_server import (
    Pebble,
    challtestsrv_challenge,
    handshake,
    resolver_block,
    serial_of,
    served_names,
    wait_verified,
)
from .stubs import free_port, refusing_port
from .tcp_peers import echo_server

pytestmark = pytest.mark.anyio


def config(pebble: Pebble, port: int, echo: int, storage: Path, challenge: str, rule: str) -> str:
    return f"""
entrypoints "db" {{
  address  = "127.0.0.1:{port}"
  protocol = "tcp"
  tls {{ }}
}}
{resolver_block(pebble, storage, challenge)}
tcp_routers "echo" {{
  rule    = "{rule}"
  service = "echo"
  tls {{ cert_resolver = "pebble" }}
}}
services "echo" {{
  load_balancer {{ servers = [{{ address = "127.0.0.1:{echo}" }}] }}
}}
"""


def _echo_through(port: int, name: str, root: str, alpn: list[str] | None = None) -> bytes:
    """A verified TLS connection through the TCP router, then bytes echoed by the backend."""
    with handshake(port, name, root, alpn) as tls:
        tls.sendall(b"hello through the tcp router")
        received = b""
        while len(received) < 28:
            chunk = tls.recv(64)
            if not chunk:
                break
            received += chunk
        return received


async def test_tls_alpn01_certificate_for_a_tcp_router(tmp_path: Path) -> None:
    port = free_port()
    storage = tmp_path / "acme.json"
    async with echo_server() as echo:
        with Pebble.start(tmp_path / "pebble", tls_port=port) as pebble:
            root = pebble.root()
            path = tmp_path / "gw.hcl"
            # ALPN(`x-db`): pebble's acme-tls/1 hello matches no router, and is answered all the same.
            rule = "HostSNI(`db.test`) || (HostSNI(`replica.db.test`) && ALPN(`x-db`))"
            path.write_text(config(pebble, port, echo.port, storage, "tls_challenge {}", rule))
            async with Gateway(str(path)) as gateway:
                await wait_verified(port, "db.test", root)
                relayed = await anyio.to_thread.run_sync(_echo_through, port, "db.test", root)
                assert relayed == b"hello through the tcp router"
                # The second name (validated although its rule wants ALPN x-db), with that ALPN.
                relayed = await anyio.to_thread.run_sync(
                    _echo_through, port, "replica.db.test", root, ["x-db"]
                )
                assert relayed == b"hello through the tcp router"
                assert echo.firsts[-1] == b"hello through the tcp router"  # decrypted at the gateway
                status = gateway.health()["acme"]["pebble"]
                assert status["challenge"] == "tls-alpn-01"
                assert status["certificates"][0]["names"] == ["db.test", "replica.db.test"]
                # A reload that changes the entrypoint (a new server context) keeps the issued
                # certificate: the same serial is served right after it.
                serial = await serial_of(port, "db.test")
                text = path.read_text().replace(
                    'protocol = "tcp"', 'protocol = "tcp"\n  timeouts { read_header = "4s" }'
                )
                path.write_text(text)
                await gateway.reload(str(path))
                assert await serial_of(port, "db.test") == serial
                relayed = await anyio.to_thread.run_sync(_echo_through, port, "db.test", root)
                assert relayed == b"hello through the tcp router"


async def test_dns01_wildcard_hostsni_for_a_tcp_router(tmp_path: Path) -> None:
    port = free_port()
    async with echo_server() as echo:
        with Pebble.start(tmp_path / "pebble") as pebble:
            root = pebble.root()
            path = tmp_path / "gw.hcl"
            challenge = challtestsrv_challenge(pebble)
            text = config(
                pebble, port, echo.port, tmp_path / "acme.json", challenge, "HostSNI(`*.wild.test`)"
            )
            path.write_text(text)
            async with Gateway(str(path)) as gateway:
                await wait_verified(port, "a.wild.test", root)
                relayed = await anyio.to_thread.run_sync(_echo_through, port, "b.wild.test", root)
                assert relayed == b"hello through the tcp router"
                status = gateway.health()["acme"]["pebble"]
                assert status["certificates"][0]["names"] == ["*.wild.test"]


async def test_self_signed_fallback_until_pebble_answers(tmp_path: Path) -> None:
    port = free_port()
    async with echo_server() as echo:
        with Pebble.start(tmp_path / "pebble", tls_port=port, run=False) as pebble:
            path = tmp_path / "gw.hcl"
            rule = "HostSNI(`late.test`)"
            path.write_text(config(pebble, port, echo.port, tmp_path / "acme.json", "tls_challenge {}", rule))
            async with Gateway(str(path)):
                # No ACME server yet: the TCP router serves the self-signed fallback, and relays.
                assert await served_names(port, "late.test") == ["a3s-gateway-default.invalid"]
                assert await anyio.to_thread.run_sync(_echo_unverified, port, "late.test") == b"ping"
                pebble.run_pebble()  # the order is retried (backing off) and the certificate swapped in
                await wait_verified(port, "late.test", pebble.root())
                relayed = await anyio.to_thread.run_sync(_echo_through, port, "late.test", pebble.root())
                assert relayed == b"hello through the tcp router"


def _echo_unverified(port: int, name: str) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    with sock, context.wrap_socket(sock, server_hostname=name) as tls:
        tls.sendall(b"ping")
        return tls.recv(4)


def passthrough_config(port: int, dead: int, storage: Path, mine: int, theirs: int) -> str:
    return f"""
entrypoints "tls-in" {{
  address  = "127.0.0.1:{port}"
  protocol = "tcp"
  tls {{ }}
}}
certificate_resolvers "nowhere" {{
  acme {{
    directory = "https://127.0.0.1:{dead}/dir"
    storage   = "{storage}"
    tls_challenge {{ }}
  }}
}}
tcp_routers "mine" {{
  rule    = "HostSNI(`mine.test`)"
  service = "mine"
  tls {{ cert_resolver = "nowhere" }}
}}
tcp_routers "theirs" {{
  rule    = "HostSNI(`theirs.test`)"
  service = "theirs"
  tls {{ passthrough = true }}
}}
services "mine" {{
  load_balancer {{ servers = [{{ address = "127.0.0.1:{mine}" }}] }}
}}
services "theirs" {{
  load_balancer {{ servers = [{{ address = "127.0.0.1:{theirs}" }}] }}
}}
"""


def _acme_tls_names(port: int, name: str) -> tuple[list[str], bytes]:
    """An acme-tls/1 client (unverified): the names of the certificate it gets, and an echo."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_alpn_protocols(["acme-tls/1"])
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    with sock, context.wrap_socket(sock, server_hostname=name) as tls:
        der = tls.getpeercert(binary_form=True)
        tls.sendall(b"ping")
        echoed = tls.recv(4)
    assert der is not None
    san = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return [str(n) for n in san.value.get_values_for_type(x509.DNSName)], echoed


async def test_acme_tls_hellos_without_a_pending_challenge_are_routed(tmp_path: Path) -> None:
    """Only names the gateway is validating are answered before routing: a backend behind a
    passthrough router gets the acme-tls/1 hellos for its own names (it may be validating)."""
    port = free_port()
    certs = make_certs(tmp_path, ["theirs.test"])
    backend = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    backend.load_cert_chain(*certs.leaves["theirs.test"])
    async with echo_server() as mine, echo_server("theirs", ssl_context=backend) as theirs:
        with refusing_port() as dead:
            path = tmp_path / "gw.hcl"
            path.write_text(passthrough_config(port, dead, tmp_path / "acme.json", mine.port, theirs.port))
            async with Gateway(str(path)):
                names, echoed = await anyio.to_thread.run_sync(_acme_tls_names, port, "theirs.test")
                assert (names, echoed) == (["theirs.test"], b"ping")  # the backend's own certificate
                assert theirs.connections == 1


async def test_default_tls_options_beside_a_resolver_on_a_tcp_entrypoint(tmp_path: Path) -> None:
    """`tls_options "default"` beside a resolver: pebble's TLS-ALPN-01 hello is answered without
    them (a client certificate it cannot give, at TLS 1.2), and clients get the ACME certificate
    with them."""
    from .backends import client_identity

    port = free_port()
    client_ca, *alice = client_identity(tmp_path)
    async with echo_server() as echo:
        with Pebble.start(tmp_path / "pebble", tls_port=port) as pebble:
            root = pebble.root()
            path = tmp_path / "gw.hcl"
            text = config(
                pebble, port, echo.port, tmp_path / "acme.json", "tls_challenge {}", "HostSNI(`db.test`)"
            )
            text += f'tls_options "default" {{\n  max_version = "1.2"\n  client_auth {{ ca_files = ["{client_ca}"] }}\n}}\n'
            path.write_text(text)

            def through(identity: bool) -> tuple[str | None, bytes]:
                context = ssl.create_default_context(cadata=root)
                if identity:
                    context.load_cert_chain(alice[0], alice[1])
                with (
                    socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
                    context.wrap_socket(raw, server_hostname="db.test") as tls,
                ):
                    tls.sendall(b"ping")
                    return tls.version(), tls.recv(64)

            async with Gateway(str(path)) as gateway:
                with anyio.fail_after(60):
                    while gateway.health()["acme"]["pebble"]["certificates"][0]["status"] != "valid":
                        await anyio.sleep(0.2)
                assert await anyio.to_thread.run_sync(through, True) == ("TLSv1.2", b"ping")
                with pytest.raises((ssl.SSLError, OSError)):
                    await anyio.to_thread.run_sync(through, False)
