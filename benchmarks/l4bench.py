"""What the layer-4 benchmarks (udprelay.py, tcprelay.py) share: proxy processes and their CPU."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil

__all__ = ["cpu", "start_gateway", "stop_all"]


def cpu(process: psutil.Process | None) -> float:
    """CPU seconds (user + system) of `process` and its children (None: 0)."""
    if process is None:
        return 0.0
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        times = p.cpu_times()
        total += times.user + times.system
    return total


def start_gateway(
    work: Path,
    hcl: str,
    started: list[subprocess.Popen[bytes]],
    *,
    backend: str = "asyncio",
    pythonpath: str | None = None,
) -> psutil.Process:
    """`a3s-gateway run` (one worker, on `backend`) on `hcl`, written to `work`; added to `started`.

    `pythonpath`: a directory holding another copy of the `a3s_gateway` package, imported instead
    of the installed one (to measure two versions of the code side by side)."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "gw.hcl"
    config.write_text(hcl)
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    gateway = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("a3s-gateway")),
            "run",
            "--config",
            str(config),
            "--backend",
            backend,
        ],
        stderr=subprocess.DEVNULL,
        env=env,
    )
    started.append(gateway)
    return psutil.Process(gateway.pid)


def stop_all(started: list[subprocess.Popen[bytes]], work: Path) -> None:
    """Stop the processes, last started first, and remove `work`."""
    for process in reversed(started):
        process.terminate()
        process.wait(10)
    shutil.rmtree(work, ignore_errors=True)
