"""The live feed's state changes across the workers of `run --workers N`.

Each worker is a gateway of its own: its health checks, scalers, rollouts and reloads publish to
its own `LiveHub`, and a client of `GET /api/gateway/live` is connected to one worker. So that
the client sees every worker's state changes, each worker binds a Unix datagram socket,
`<dir>/<pid>.sock`, in a directory the supervisor makes (and deletes), and sends each state
change it publishes to every other socket there; what a worker receives it fans out to its own
watchers as if it had published it, with the sender's `worker` index in the data.

Why datagrams in a directory: no process in the middle (the supervisor only makes the directory
and removes a dead worker's socket), no connection to keep or re-establish when a worker restarts
(a new worker appears as a new file, a dead one refuses and is skipped), and a send never blocks
or buffers in the gateway: the socket is non-blocking, and when a peer's receive buffer is full
(a worker that stopped reading) the event is dropped for that peer, as a slow watcher's feed
drops events. Samples are not relayed: every worker's sample reads the Prometheus registry that
`--workers` shares (the rates are the gateway's already).

State changes are rare (a reload, a health flip, a scaling decision), so a send lists the
directory each time instead of tracking peers.

The receiving socket is a plain non-blocking one read after `anyio.wait_readable`, not anyio's
datagram socket: on uvloop, that one's readiness callback (`Future.set_result`) could run once
more after a cancelled wait (the worker's shutdown), and log an asyncio.InvalidStateError
traceback; `wait_readable` tolerates it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anyio

__all__ = ["LIVE_DIR_ENV", "MAX_DATAGRAM", "SUFFIX", "WorkerRelay", "relay_dir"]

_log = logging.getLogger("a3s_gateway.live")

LIVE_DIR_ENV = "A3S_GATEWAY_LIVE_DIR"
MAX_DATAGRAM = 65536  # the largest event relayed
SUFFIX = ".sock"

Deliver = Callable[[str, Mapping[str, Any]], None]


def relay_dir() -> str | None:
    """The directory the workers' sockets meet in, or None outside `run --workers N`."""
    return os.environ.get(LIVE_DIR_ENV) or None


class WorkerRelay:
    """One worker's end: `send` its state changes to the others, `run` to receive theirs."""

    def __init__(self, directory: str, worker: int) -> None:
        self.directory = Path(directory)
        self.worker = worker
        self.path = self.directory / f"{os.getpid()}{SUFFIX}"
        self._out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._out.setblocking(False)
        self._in: socket.socket | None = None

    async def open(self) -> None:
        """Bind this worker's socket (before the first send, so no peer misses it for long)."""
        receiving = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            receiving.setblocking(False)
            receiving.bind(str(self.path))
            os.chmod(self.path, 0o600)
        except OSError:
            receiving.close()
            raise
        self._in = receiving

    def send(self, event: str, data: Mapping[str, Any]) -> None:
        payload = json.dumps({"event": event, "data": data}, separators=(",", ":"), default=str).encode()
        if len(payload) > MAX_DATAGRAM:
            _log.warning(
                "live feed: a %s event of %d bytes is not relayed to the other workers", event, len(payload)
            )
            return
        try:
            peers = [p for p in self.directory.iterdir() if p.suffix == SUFFIX and p != self.path]
        except OSError:  # the supervisor removed the directory: it is stopping
            return
        for peer in peers:
            try:
                self._out.sendto(payload, str(peer))
            except OSError:  # gone (refused, removed) or not reading (buffer full): skipped
                continue

    async def run(self, deliver: Deliver) -> None:
        """Receive the other workers' state changes until cancelled; `deliver` each one."""
        assert self._in is not None, "open() first"
        try:
            while True:
                await anyio.wait_readable(self._in)
                try:
                    payload = self._in.recv(MAX_DATAGRAM)
                except (BlockingIOError, InterruptedError):
                    continue
                self._received(payload, deliver)
        except (OSError, anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            # The worker serves on; its feed only misses the other workers' state changes.
            _log.warning("live feed: the relay from the other workers stopped: %s", exc)

    @staticmethod
    def _received(payload: bytes, deliver: Deliver) -> None:
        try:
            message = json.loads(payload)
            event, data = message["event"], message["data"]
        except (ValueError, KeyError, TypeError):
            _log.warning("live feed: an undecodable relay datagram was ignored")
            return
        if isinstance(event, str) and isinstance(data, dict):
            try:
                deliver(event, data)
            except Exception:  # a watcher's bug must not stop the relay (nor the worker)
                _log.exception("live feed: delivering a relayed %s event failed", event)

    async def aclose(self) -> None:
        self._out.close()
        if self._in is not None:
            anyio.notify_closing(self._in)  # a task still waiting on it (trio) wakes, closed
            self._in.close()
        self.path.unlink(missing_ok=True)
