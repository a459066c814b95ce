"""ACME faults against a real pebble: the ACME server down at start-up (the self-signed fallback
is served and the order retried), pebble rejecting nonces, and a storage file that is corrupt or
cannot be written (a clear error, the file left as it is, certificates already served kept)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from a3s_gateway.runtime.gateway import Gateway

from .pebble_server import Pebble, http01_config, serial_of, served_names, wait_verified
from .stubs import eventually, free_port

pytestmark = pytest.mark.anyio


def _certificate(gateway: Gateway, index: int = 0) -> dict[str, Any]:
    return dict(gateway.health()["acme"]["pebble"]["certificates"][index])


def _metric(gateway: Gateway, name: str, **labels: str) -> float | None:
    assert gateway.metrics is not None
    return gateway.metrics.value(f"a3s_gateway_{name}", labels)


async def test_acme_server_down_at_start_then_up(tmp_path: Path) -> None:
    web, websecure = free_port(), free_port()
    cert = {"resolver": "pebble", "names": "app.test"}
    with Pebble.start(tmp_path / "pebble", http_port=web, run=False) as pebble:
        path = tmp_path / "gw.hcl"
        path.write_text(
            http01_config(pebble, web, websecure, tmp_path / "acme.json") + "metrics { prometheus { } }\n"
        )
        async with Gateway(str(path)) as gateway:
            # Serving at once, with the fallback; the failure is in the health API, retried.
            await eventually(lambda: _certificate(gateway).get("failures", 0) >= 2, timeout=30)
            failing = _certificate(gateway)
            assert failing["status"] == "failing" and pebble.directory in failing["error"], failing
            assert await served_names(websecure, "app.test") == ["a3s-gateway-default.invalid"]
            # ... and in the metrics: failures in a row, failed orders, no expiry yet.
            assert (_metric(gateway, "acme_certificate_failures", **cert) or 0) >= 2
            assert (_metric(gateway, "acme_orders_total", resolver="pebble", result="failure") or 0) >= 2
            assert _metric(gateway, "acme_certificate_not_after", **cert) is None
            pebble.run_pebble()
            await wait_verified(websecure, "app.test", pebble.root())
            assert _certificate(gateway)["status"] == "valid"
            assert _metric(gateway, "acme_certificate_failures", **cert) == 0
            assert _metric(gateway, "acme_orders_total", resolver="pebble", result="success") == 1
            assert (_metric(gateway, "acme_certificate_not_after", **cert) or 0) > time.time()


async def test_nonce_rejection_is_retried(tmp_path: Path) -> None:
    web, websecure = free_port(), free_port()
    # Pebble refuses half of the good nonces (badNonce): retried (RFC 8555 §6.5), the order goes
    # through without a single failure.
    env = {"PEBBLE_WFE_NONCEREJECT": "50"}
    with Pebble.start(tmp_path / "pebble", http_port=web, env=env) as pebble:
        path = tmp_path / "gw.hcl"
        path.write_text(http01_config(pebble, web, websecure, tmp_path / "acme.json"))
        async with Gateway(str(path)) as gateway:
            await wait_verified(websecure, "app.test", pebble.root())
            assert _certificate(gateway)["status"] == "valid"
            assert "failures" not in _certificate(gateway)
        assert "Configured to reject 50% of good nonces" in (tmp_path / "pebble" / "pebble.log").read_text()


async def test_corrupt_and_unwritable_storage(tmp_path: Path) -> None:
    web, websecure = free_port(), free_port()
    storage = tmp_path / "acme.json"
    storage.write_text("{ not json")
    with Pebble.start(tmp_path / "pebble", http_port=web) as pebble:
        root = pebble.root()
        path = tmp_path / "gw.hcl"
        path.write_text(http01_config(pebble, web, websecure, storage))
        async with Gateway(str(path)) as gateway:
            await eventually(lambda: "storage_error" in gateway.health()["acme"]["pebble"], timeout=20)
            error = gateway.health()["acme"]["pebble"]["storage_error"]
            assert error.startswith(f"{storage}: not an ACME storage file"), error
            assert await served_names(websecure, "app.test") == ["a3s-gateway-default.invalid"]
            assert storage.read_text() == "{ not json"  # never overwritten
            storage.unlink()  # the operator removes it: the next try orders
            await wait_verified(websecure, "app.test", root)
            serial = await serial_of(websecure, "app.test")
            # Corrupt again, and ask for one more name: the new name fails with the storage
            # error, the certificate already served is kept.
            storage.write_text("[]")
            path.write_text(
                http01_config(pebble, web, websecure, storage, "Host(`app.test`) || Host(`two.test`)")
            )
            await gateway.reload(str(path))
            await eventually(lambda: _certificate(gateway).get("failures", 0) >= 1, timeout=20)
            assert "not an ACME storage file" in _certificate(gateway)["error"]
            assert await serial_of(websecure, "app.test") == serial
        # A storage path that cannot be written (its folder is a file): a clear error, retried.
        blocked = tmp_path / "a-file"
        blocked.write_text("")
        path.write_text(http01_config(pebble, web, websecure, blocked / "acme.json"))
        async with Gateway(str(path)) as gateway:
            await eventually(lambda: _certificate(gateway).get("failures", 0) >= 2, timeout=20)
            assert _certificate(gateway)["error"].startswith(f"{blocked / 'acme.json'}: cannot"), (
                _certificate(gateway)
            )
            assert await served_names(websecure, "app.test") == ["a3s-gateway-default.invalid"]
            await anyio.sleep(0)
