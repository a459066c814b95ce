"""The WebSocket peers' child process (tests/ws_peers.py), driven from a test.

The backend listens on `Peers.port`; `run(script, **args)` runs one of the child's scripts and
returns its result (an error in the script fails the test with it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import anyio

__all__ = ["Peers"]


class Peers:
    """The child process hosting the backend and running client scripts."""

    def __init__(self) -> None:
        script = Path(__file__).with_name("ws_peers.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self._lock = threading.Lock()
        self.port = int(self._read()["port"])

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the WebSocket peers process died")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def call(self, script: str, **args: Any) -> Any:
        assert self.proc.stdin is not None
        with self._lock:
            self.proc.stdin.write(json.dumps({"script": script, **args}) + "\n")
            self.proc.stdin.flush()
            reply = self._read()
        if "error" in reply:
            raise AssertionError(f"{script}: {reply['error']}")
        return reply["result"]

    async def run(self, script: str, **args: Any) -> Any:
        return await anyio.to_thread.run_sync(lambda: self.call(script, **args))

    async def backend_closes(self, before: int) -> int | None:
        """The close code of the next backend connection to end after `before` had ended."""
        with anyio.fail_after(5):
            while True:
                codes = (await self.run("state"))["closed_codes"]
                if len(codes) > before:
                    return codes[-1]  # type: ignore[no-any-return]
                await anyio.sleep(0.02)

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
