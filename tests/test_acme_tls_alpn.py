"""ACME TLS-ALPN-01 against a real pebble, with the A3S spelling `tls { acme = true ... }`: the
gateway answers pebble's `acme-tls/1` handshake with the challenge certificate on the TLS
entrypoint itself, then serves the issued chain, which Python's ssl verifies against pebble's
root; the challenge certificate is gone once the order is over."""

from __future__ import annotations

import ssl
from pathlib import Path

import anyio
import pytest

from a3s_gateway.runtime.gateway import Gateway

from .pebble_server import Pebble, get, handshake, wait_verified
from .stubs import free_port

pytestmark = pytest.mark.anyio


def config(pebble: Pebble, port: int, storage: Path) -> str:
    return f"""
entrypoints "websecure" {{
  address = "127.0.0.1:{port}"
  tls {{
    acme              = true
    acme_email        = "ops@example.com"
    acme_domains      = ["alpn.test", "www.alpn.test"]
    acme_directory    = "{pebble.directory}"
    acme_ca_bundle    = "{pebble.ca_file}"
    acme_storage_path = "{storage}"
  }}
}}
routers "app" {{
  rule    = "Host(`alpn.test`) || Host(`www.alpn.test`)"
  service = "ping@internal"
}}
"""


def _offers_acme_tls(port: int, name: str, root: str) -> str | None:
    """What an `acme-tls/1` client is answered once the order is over (None: a verified chain)."""
    try:
        with handshake(port, name, root, alpn=["acme-tls/1"]):
            return None
    except ssl.SSLError as exc:
        return str(exc)


async def test_tls_alpn01_with_the_a3s_spelling(tmp_path: Path) -> None:
    port = free_port()
    storage = tmp_path / "acme.json"
    with Pebble.start(tmp_path / "pebble", tls_port=port) as pebble:
        root = pebble.root()
        path = tmp_path / "gw.hcl"
        path.write_text(config(pebble, port, storage))
        async with Gateway(str(path)) as gateway:
            await wait_verified(port, "alpn.test", root)
            await wait_verified(port, "www.alpn.test", root)
            response = await anyio.to_thread.run_sync(get, port, "www.alpn.test", root)
            assert response.startswith(b"HTTP/1.1 200"), response
            status = gateway.health()["acme"]["websecure@acme"]
            assert status["challenge"] == "tls-alpn-01"
            assert status["certificates"][0]["names"] == ["alpn.test", "www.alpn.test"]
            # The order is over: an acme-tls/1 client gets the issued chain, not a challenge.
            assert await anyio.to_thread.run_sync(_offers_acme_tls, port, "alpn.test", root) is None
