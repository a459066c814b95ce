"""ACME DNS-01 against a real pebble, through the `challtestsrv` DNS provider kind: pebble
resolves through pebble-challtestsrv, whose TXT records the gateway sets over its management API.
A wildcard certificate (only DNS-01 may validate one) is issued with the configured key type,
propagation is checked on the DNS server before answering, the chain verifies against pebble's
root, and the TXT records are removed afterwards."""

from __future__ import annotations

from pathlib import Path

import anyio
import dns.message
import dns.query
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from a3s_gateway.runtime.gateway import Gateway

from .pebble_server import Pebble, challtestsrv_challenge, resolver_block, served_leaf, wait_verified
from .stubs import free_port

pytestmark = pytest.mark.anyio


def config(pebble: Pebble, port: int, storage: Path) -> str:
    challenge = challtestsrv_challenge(pebble)
    return f"""
entrypoints "websecure" {{
  address = "127.0.0.1:{port}"
  tls {{ }}
}}
{resolver_block(pebble, storage, challenge, extra='key_type = "ec384"')}
routers "app" {{
  rule    = "HostRegexp(`^(.+\\\\.)?wild\\\\.test$`)"
  service = "ping@internal"
  tls {{
    cert_resolver = "pebble"
    domains {{
      main = "*.wild.test"
      sans = ["wild.test"]
    }}
  }}
}}
"""


def _txt(pebble: Pebble, name: str) -> list[bytes]:
    answer = dns.query.udp(dns.message.make_query(name, "TXT"), "127.0.0.1", port=pebble.dns_port, timeout=2)
    return [b"".join(r.strings) for rrset in answer.answer for r in rrset]


async def test_dns01_wildcard_through_challtestsrv(tmp_path: Path) -> None:
    port = free_port()
    with Pebble.start(tmp_path / "pebble") as pebble:
        root = pebble.root()
        path = tmp_path / "gw.hcl"
        path.write_text(config(pebble, port, tmp_path / "acme.json"))
        async with Gateway(str(path)) as gateway:
            await wait_verified(port, "anything.wild.test", root)
            await wait_verified(port, "wild.test", root)
            status = gateway.health()["acme"]["pebble"]
            assert status["challenge"] == "dns-01"
            assert status["certificates"][0]["names"] == ["*.wild.test", "wild.test"]
            # key_type = "ec384": the certificate's key is on P-384.
            leaf = await anyio.to_thread.run_sync(served_leaf, port, "wild.test")
            key = leaf.public_key()
            assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1"
            # Cleaned up: no TXT value is left at the challenge name.
            assert await anyio.to_thread.run_sync(_txt, pebble, "_acme-challenge.wild.test.") == []
