"""TLS options beside ACME certificate resolvers, against a real pebble: a host with options of its
own gets its issued certificate and its options' handshake (here a client certificate, at TLS
1.2), another host the `default` options; pebble's TLS-ALPN-01 validation gets through options it
could not meet (no client certificate); a reload that changes a host's options keeps its
certificate (no new order)."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import anyio
import pytest
from cryptography import x509

from a3s_gateway.runtime.gateway import Gateway

from .backends import client_identity
from .pebble_server import Pebble, resolver_block, wait_verified
from .stubs import free_port

pytestmark = pytest.mark.anyio


def config(pebble: Pebble, port: int, storage: Path, client_ca: str, *, secure: str = "mtls") -> str:
    return f"""
entrypoints "websecure" {{
  address = "127.0.0.1:{port}"
  tls {{ }}
}}
{resolver_block(pebble, storage, "tls_challenge { }")}
tls_options "mtls" {{
  max_version = "1.2"
  client_auth {{ ca_files = ["{client_ca}"] }}
}}
tls_options "modern" {{ min_version = "1.3" }}
tls_options "default" {{ max_version = "1.2" }}
routers "secure" {{
  rule    = "Host(`secure.test`)"
  service = "ping@internal"
  tls {{
    cert_resolver = "pebble"
    options       = "{secure}"
  }}
}}
routers "open" {{
  rule    = "Host(`open.test`)"
  service = "ping@internal"
  tls {{ cert_resolver = "pebble" }}
}}
"""


def fetch(port: int, name: str, root: str, identity: tuple[str, str] | None = None) -> tuple[str, bytes, int]:
    """GET /ping for `name`, verified against pebble's root (in a thread): (TLS version, the
    status line, b"" when the gateway ends the connection after the handshake, the serial number
    of the certificate served)."""
    context = ssl.create_default_context(cadata=root)
    if identity is not None:
        context.load_cert_chain(*identity)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        tls.sendall(f"GET /ping HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        try:
            data = tls.recv(65536)
        except (ssl.SSLError, ConnectionResetError):
            data = b""
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return (
            tls.version() or "",
            data.split(b"\r\n", 1)[0],
            x509.load_der_x509_certificate(der).serial_number,
        )


def refused(port: int, name: str, root: str) -> bool:
    try:
        _, data, _ = fetch(port, name, root)
    except (ssl.SSLError, OSError):
        return True
    return data == b""


async def test_a_host_gets_its_acme_certificate_and_its_options(tmp_path: Path) -> None:
    port = free_port()
    storage = tmp_path / "acme.json"
    client_ca, *alice = client_identity(tmp_path)
    identity = (alice[0], alice[1])
    with Pebble.start(tmp_path / "pebble", tls_port=port) as pebble:
        root = pebble.root()
        path = tmp_path / "gw.hcl"
        path.write_text(config(pebble, port, storage, client_ca))
        async with Gateway(str(path)) as gateway:
            # Pebble validated secure.test by TLS-ALPN-01 although its options require a client
            # certificate, which pebble's validator has none of.
            await wait_verified(port, "open.test", root)

            def statuses() -> dict[tuple[str, ...], str]:
                found = gateway.health()["acme"]["pebble"]["certificates"]
                return {tuple(c["names"]): c["status"] for c in found}

            with anyio.fail_after(60):
                while statuses() != {("secure.test",): "valid", ("open.test",): "valid"}:
                    await anyio.sleep(0.2)
            version, response, serial = await anyio.to_thread.run_sync(
                fetch, port, "secure.test", root, identity
            )
            assert (version, response) == ("TLSv1.2", b"HTTP/1.1 200 OK")
            assert await anyio.to_thread.run_sync(refused, port, "secure.test", root)
            # The default options (at most TLS 1.2) on the other host, with its own certificate.
            version, response, _ = await anyio.to_thread.run_sync(fetch, port, "open.test", root)
            assert (version, response) == ("TLSv1.2", b"HTTP/1.1 200 OK")

            # Other options for secure.test: the same certificate (no new order), a TLS 1.3
            # handshake with no client certificate.
            path.write_text(config(pebble, port, storage, client_ca, secure="modern"))
            await gateway.reload(str(path))
            assert await anyio.to_thread.run_sync(fetch, port, "secure.test", root) == (
                "TLSv1.3",
                b"HTTP/1.1 200 OK",
                serial,
            )
            orders = [c["orders"] for c in gateway.health()["acme"]["pebble"]["certificates"]]
            assert orders == [1, 1], orders
