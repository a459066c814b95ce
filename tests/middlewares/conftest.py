"""Fixtures shared by the middleware tests: a real redis-server on a free port."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis

from ..stubs import free_port


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A throw-away redis-server (no persistence) for one test module; its URL."""
    server = shutil.which("redis-server")
    if server is None:  # `make test` installs it; a missing server must not pass as a skip
        pytest.fail("redis-server is not installed: run `make test-deps` (scripts/install-test-deps.sh)")
    port = free_port()
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)
