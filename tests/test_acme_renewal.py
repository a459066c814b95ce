"""Renewal against a real pebble issuing short-lived certificates: at two thirds of the lifetime a
new certificate is ordered and swapped into the live TLS contexts; a connection opened before
the swap keeps working on its certificate, and new handshakes get the new one."""

from __future__ import annotations

import ssl
from pathlib import Path

import anyio
import pytest

from a3s_gateway.runtime.gateway import Gateway

from .pebble_server import Pebble, handshake, http01_config, serial_of, wait_verified
from .stubs import eventually, free_port

pytestmark = pytest.mark.anyio

LIFETIME = 15  # seconds: pebble's certificateValidityPeriod; renewal comes after 10


def _ask(tls: ssl.SSLSocket) -> bytes:
    """One keep-alive exchange: the whole response (ping's body ends it)."""
    tls.sendall(b"GET /ping HTTP/1.1\r\nHost: app.test\r\n\r\n")
    data = b""
    while not data.endswith(b'{"status":"ok"}'):
        chunk = tls.recv(65536)
        assert chunk, data
        data += chunk
    return data


def _serial(tls: ssl.SSLSocket) -> int:
    from cryptography import x509

    der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


async def test_renewal_swaps_and_an_open_connection_survives(tmp_path: Path) -> None:
    web, websecure = free_port(), free_port()
    with Pebble.start(tmp_path / "pebble", http_port=web, validity=LIFETIME) as pebble:
        root = pebble.root()
        path = tmp_path / "gw.hcl"
        path.write_text(http01_config(pebble, web, websecure, tmp_path / "acme.json"))
        async with Gateway(str(path)) as gateway:
            await wait_verified(websecure, "app.test", root)
            first = await serial_of(websecure, "app.test")
            tls = await anyio.to_thread.run_sync(handshake, websecure, "app.test", root)
            try:
                assert (await anyio.to_thread.run_sync(_ask, tls)).startswith(b"HTTP/1.1 200")

                def renewed() -> bool:
                    return gateway.health()["acme"]["pebble"]["certificates"][0]["orders"] >= 2

                await eventually(renewed, timeout=LIFETIME * 3, interval=0.2)
                second = await serial_of(websecure, "app.test")
                assert second != first
                await wait_verified(websecure, "app.test", root)
                # The connection opened before the swap: same certificate, still served.
                assert format(_serial(tls), "x") == first
                assert (await anyio.to_thread.run_sync(_ask, tls)).startswith(b"HTTP/1.1 200")
            finally:
                tls.close()
