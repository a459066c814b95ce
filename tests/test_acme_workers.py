"""`run --workers 3` with an ACME resolver against a real pebble: exactly one worker orders the
certificate (under the file lock beside the storage file); the others pick it up from storage.
Pebble connects to whichever worker the kernel hands its HTTP-01 request to: a worker that does
not hold the token finds it on the board the ordering worker wrote. Every worker then serves the
chain (ten handshakes, spread over the workers by SO_REUSEPORT, all verify)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
import pytest

from .pebble_server import Pebble, http01_config, verifies, wait_verified
from .stubs import eventually, free_port
from .tcp_peers import GATEWAY

pytestmark = pytest.mark.anyio


async def test_one_worker_orders_the_others_pick_it_up(
    tmp_path: Path, anyio_backend: tuple[str, object]
) -> None:
    # The workers run on the test's backend too (asyncio runs uvloop when installed).
    web, websecure = free_port(), free_port()
    with Pebble.start(tmp_path / "pebble", http_port=web) as pebble:
        root = pebble.root()
        path = tmp_path / "gw.hcl"
        path.write_text(http01_config(pebble, web, websecure, tmp_path / "acme.json"))
        log = tmp_path / "gateway.log"
        with log.open("wb") as err:
            process = await anyio.open_process(
                [GATEWAY, "run", "--workers", "3", "--backend", anyio_backend[0], "--config", str(path)],
                stderr=err,
                stdout=subprocess.DEVNULL,
            )
            try:
                await wait_verified(websecure, "app.test", root)

                def all_have_it() -> bool:
                    text = log.read_text()
                    return text.count("certificate for app.test") >= 3

                await eventually(all_have_it, timeout=60, interval=0.2)
                for _ in range(10):
                    assert await anyio.to_thread.run_sync(verifies, websecure, "app.test", root)
            finally:
                process.terminate()
                with anyio.fail_after(20):
                    await process.wait()
                await process.aclose()
        text = log.read_text()
        assert text.count("certificate for app.test issued") == 1, text
        issued = (tmp_path / "pebble" / "pebble.log").read_text().count("Issued certificate serial")
        assert issued == 1
