"""ACME HTTP-01 against a real pebble: issued in the background, a self-signed fallback until
then, the challenge answered before a catch-all router, the chain verified by Python's ssl
against pebble's root, stored in one 0600 file, and kept across a reload and a restart."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import anyio
import pytest

from a3s_gateway.runtime.gateway import Gateway

from .pebble_server import Pebble, get, http01_config, serial_of, wait_verified
from .stubs import free_port

pytestmark = pytest.mark.anyio


def config(pebble: Pebble, web: int, websecure: int, storage: Path) -> str:
    # A catch-all on the challenge entrypoint: it must not shadow the challenge path.
    return (
        http01_config(pebble, web, websecure, storage)
        + """
routers "everything" {
  rule        = "PathPrefix(`/`)"
  service     = "ping@internal"
  entrypoints = ["web"]
}
"""
    )


async def test_http01_issues_serves_stores_and_survives_reload(tmp_path: Path) -> None:
    web, websecure = free_port(), free_port()
    storage = tmp_path / "acme" / "acme.json"
    with Pebble.start(tmp_path / "pebble", http_port=web) as pebble:
        root = pebble.root()
        path = tmp_path / "gw.hcl"
        path.write_text(config(pebble, web, websecure, storage))
        async with Gateway(str(path)) as gateway:
            await wait_verified(websecure, "app.test", root)
            response = await anyio.to_thread.run_sync(get, websecure, "app.test", root)
            assert response.startswith(b"HTTP/1.1 200"), response
            serial = await serial_of(websecure, "app.test")
            status = gateway.health()["acme"]["pebble"]["certificates"][0]
            assert status["status"] == "valid" and status["names"] == ["app.test"], status
            # One file, mode 0600, holding the account and the certificate.
            assert stat.S_IMODE(storage.stat().st_mode) == 0o600
            data = json.loads(storage.read_text())
            assert list(data["accounts"]) == [pebble.directory]
            assert list(data["certificates"][pebble.directory]) == ["app.test"]
            # A reload that changes the entrypoint keeps the issued certificate: no new order.
            path.write_text(
                config(pebble, web, websecure, storage).replace("tls { }", 'tls { alpn = ["http/1.1"] }')
            )
            await gateway.reload(str(path))
            assert await serial_of(websecure, "app.test") == serial
            assert gateway.health()["acme"]["pebble"]["certificates"][0]["orders"] == 1
        # A restart loads it from storage (pebble would issue a new serial for a new order).
        async with Gateway(str(path)) as gateway:
            await wait_verified(websecure, "app.test", root)
            assert await serial_of(websecure, "app.test") == serial
            assert gateway.health()["acme"]["pebble"]["certificates"][0]["orders"] == 0
