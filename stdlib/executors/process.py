"""`process`: replicas are local processes. Real scale-to-zero for a model server on one machine.

    scaling {
      min_replicas = 0
      max_replicas = 2
      executor     = "process"
      process {
        command       = "llama-server -m /models/qwen.gguf --host 127.0.0.1 --port {port}"
        health_path   = "/health"
        ready_timeout = "120s"
        stop_grace    = "10s"
        env           = { CUDA_VISIBLE_DEVICES = "0" }
      }
    }

Each replica gets a free TCP port on `host` and runs `command` with `{port}`, `{host}` and
`{replica}` (its index) substituted; the command is split like a shell would (`shlex`) but no
shell runs it. `env` adds to the gateway's environment (placeholders work there too, and `PORT`
is always set). A replica is ready when `GET http://host:port<health_path>` answers 2xx; it is
polled every `probe_interval` until then. One that is not ready within `ready_timeout` is
stopped and started again; one that exits is started again, with a back-off that doubles from
`restart_backoff` up to 30 s and resets once a replica was ready.

Stopping sends SIGTERM to the replica's process group, then SIGKILL after `stop_grace`. When the
autoscaler scales down, a replica still loading goes first (as a Kubernetes ReplicaSet does), and
a ready one is first taken out of rotation and drained (its in-flight requests finish, up to
`drain_timeout`) before the signal. Processes never outlive the executor: cancelling `run()`
stops them all.

`output = "discard"` sends the replicas' stdout and stderr to /dev/null instead of the gateway's.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from anyio.abc import Process, TaskGroup

from ..base import BuildContext
from ..registry import register
from ._base import Executor
from .schemas.process import ProcessConfig

__all__ = ["ProcessConfig", "ProcessExecutor"]

_MAX_BACKOFF = 30.0


def _substitute(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(eq=False)
class _Replica:
    index: int
    host: str
    port: int = 0
    process: Process | None = None
    ready: bool = False
    stopping: bool = False
    scope: anyio.CancelScope | None = None
    restarts: int = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@register("executor", "process")
class ProcessExecutor(Executor[ProcessConfig]):
    """Starts, supervises and stops local processes, one per replica."""

    def __init__(self, config: ProcessConfig, ctx: BuildContext, *, servers: Sequence[str] = ()) -> None:
        super().__init__(config, ctx, servers=servers)
        self._replicas: list[_Replica] = []
        self._next_index = 0
        self._client: httpx.AsyncClient | None = None

    async def _main(self) -> None:
        timeout = httpx.Timeout(min(5.0, max(0.5, self.config.ready_timeout)))
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            self._client = client
            async with anyio.create_task_group() as tg:
                while True:
                    self._wake = anyio.Event()
                    self._reconcile(tg)
                    await self._wake.wait()

    def _reconcile(self, tg: TaskGroup) -> None:
        live = [r for r in self._replicas if not r.stopping]
        for _ in range(self.desired - len(live)):
            replica = _Replica(self._next_index, self.config.host)
            self._next_index += 1
            self._replicas.append(replica)
            tg.start_soon(self._replica_main, replica)
        # Loading replicas go first, then the newest ready ones.
        extra = sorted(live, key=lambda r: (r.ready, -r.index))[: max(0, len(live) - self.desired)]
        for replica in extra:
            replica.stopping = True
            if replica.scope is not None:
                replica.scope.cancel()

    async def _replica_main(self, replica: _Replica) -> None:
        backoff = self.config.restart_backoff
        try:
            while not replica.stopping:
                became_ready = await self._lifetime(replica)
                if replica.stopping:
                    break
                backoff = self.config.restart_backoff if became_ready else min(backoff * 2, _MAX_BACKOFF)
                replica.restarts += 1
                with anyio.CancelScope() as scope:
                    replica.scope = scope
                    await anyio.sleep(backoff)
        finally:
            self._replicas.remove(replica)
            self._publish_ready()

    async def _lifetime(self, replica: _Replica) -> bool:
        """Start the process, wait until ready, serve until it exits or is told to stop."""
        proc = await self._spawn(replica)
        ready = False
        try:
            with anyio.CancelScope() as scope:
                replica.scope = scope
                if replica.stopping:
                    scope.cancel()
                ready = await self._wait_ready(replica, proc)
                if ready:
                    replica.ready = True
                    self._publish_ready()
                    code = await proc.wait()
                    self.log.warning(
                        "replica %d (%s) exited with status %s", replica.index, replica.url, code
                    )
            if replica.stopping and replica.ready:
                await self._drain(replica)
            return ready
        finally:
            replica.ready = False
            self._publish_ready()
            with anyio.CancelScope(shield=True):
                await self._stop(proc)
            replica.process = None

    async def _spawn(self, replica: _Replica) -> Process:
        cfg = self.config
        replica.port = free_port(cfg.host)
        values = {"port": str(replica.port), "host": cfg.host, "replica": str(replica.index)}
        argv = shlex.split(_substitute(cfg.command, values))
        env = {
            **os.environ,
            **{k: _substitute(v, values) for k, v in cfg.env.items()},
            "PORT": str(replica.port),
        }
        output: Any = subprocess.DEVNULL if cfg.output == "discard" else None
        self.log.info("starting replica %d: %s", replica.index, shlex.join(argv))
        proc = await anyio.open_process(
            argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output, env=env, cwd=cfg.cwd,
            start_new_session=True,
        )  # fmt: skip
        replica.process = proc
        return proc

    async def _wait_ready(self, replica: _Replica, proc: Process) -> bool:
        cfg = self.config
        with anyio.move_on_after(cfg.ready_timeout):
            while proc.returncode is None:
                if await self._probe(replica.url + cfg.health_path):
                    return True
                await anyio.sleep(cfg.probe_interval)
            self.log.warning(
                "replica %d exited with status %s before it was ready", replica.index, proc.returncode
            )
            return False
        self.log.warning("replica %d not ready after %gs: restarting it", replica.index, cfg.ready_timeout)
        return False

    async def _probe(self, url: str) -> bool:
        assert self._client is not None
        try:
            response = await self._client.get(url)
        except httpx.HTTPError:
            return False
        return 200 <= response.status_code < 300

    async def _drain(self, replica: _Replica) -> None:
        replica.ready = False
        self._publish_ready()
        if self.drainer is not None:
            with anyio.move_on_after(self.config.drain_timeout):
                await self.drainer(replica.url)

    async def _stop(self, proc: Process) -> None:
        if proc.returncode is None:
            _signal(proc, signal.SIGTERM)
            with anyio.move_on_after(self.config.stop_grace):
                await proc.wait()
            if proc.returncode is None:
                self.log.warning(
                    "process %d ignored SIGTERM for %gs: SIGKILL", proc.pid, self.config.stop_grace
                )
                _signal(proc, signal.SIGKILL)
        await proc.aclose()

    def _publish_ready(self) -> None:
        self.publish([r.url for r in self._replicas if r.ready and not r.stopping])

    def snapshot(self) -> dict[str, Any]:
        return {
            **super().snapshot(),
            "replicas": [
                {
                    "index": r.index, "url": r.url, "ready": r.ready, "stopping": r.stopping,
                    "pid": r.process.pid if r.process else None, "restarts": r.restarts,
                }
                for r in self._replicas
            ],
        }  # fmt: skip


def _signal(proc: Process, sig: signal.Signals) -> None:
    """Signal the replica's whole process group (it was started in a new session)."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
