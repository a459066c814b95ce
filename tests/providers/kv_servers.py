"""Real key-value servers for the provider tests: etcd (Debian's etcd-server) and redis-server,
started by the test on free ports, stoppable and restartable on the same data mid-test."""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import redis

from ..stubs import free_port


def _which(program: str) -> str:
    found = shutil.which(program)
    if found is None:  # `make test` installs it; a missing server must not pass as a skip
        pytest.fail(f"{program} is not installed: run `make test-deps` (scripts/install-test-deps.sh)")
    return found


def _wait(ready: object, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if ready():  # type: ignore[operator]
                return
        except (httpx.HTTPError, redis.exceptions.ConnectionError, OSError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what} did not start (exit {proc.poll()})")
        time.sleep(0.05)


class EtcdServer:
    """One etcd member; `stop()` kills it, `start()` brings it back on the same port and data."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port, self.peer = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [
            _which("etcd"),
            "--name=test",
            f"--data-dir={self.data}",
            f"--listen-client-urls={self.url}",
            f"--advertise-client-urls={self.url}",
            f"--listen-peer-urls=http://127.0.0.1:{self.peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{self.peer}",
            f"--initial-cluster=test=http://127.0.0.1:{self.peer}",
            "--log-level=error",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(
            lambda: httpx.get(f"{self.url}/health", timeout=1).json()["health"] == "true", self.proc, "etcd"
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def put(self, key: str, value: str | bytes) -> None:
        raw = value.encode() if isinstance(value, str) else value
        body = {"key": _b64(key.encode()), "value": _b64(raw)}
        httpx.post(f"{self.url}/v3/kv/put", json=body, timeout=5).raise_for_status()

    def delete(self, key: str) -> None:
        httpx.post(
            f"{self.url}/v3/kv/deleterange", json={"key": _b64(key.encode())}, timeout=5
        ).raise_for_status()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class RedisServer:
    """A redis-server without persistence; `notify` turns keyspace notifications on."""

    def __init__(self, notify: bool) -> None:
        self.port = free_port()
        self.notify = notify
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = redis.Redis(port=self.port, socket_connect_timeout=0.5)

    def start(self) -> None:
        args = [_which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--notify-keyspace-events", "KA" if self.notify else ""]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(self.client.ping, self.proc, "redis-server")

    def stop(self) -> None:
        self.client.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
