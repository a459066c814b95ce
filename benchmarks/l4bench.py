"""What the layer-4 benchmarks (udprelay.py, tcprelay.py) share: proxy processes and their CPU."""

from __future__ import annotations

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


def start_gateway(work: Path, hcl: str, started: list[subprocess.Popen[bytes]]) -> psutil.Process:
    """`a3s-gateway run` (one worker) on `hcl`, written to `work`; added to `started`."""
    config = work / "gw.hcl"
    config.write_text(hcl)
    gateway = subprocess.Popen(
        [str(Path(sys.executable).with_name("a3s-gateway")), "run", "--config", str(config)],
        stderr=subprocess.DEVNULL,
    )
    started.append(gateway)
    return psutil.Process(gateway.pid)


def stop_all(started: list[subprocess.Popen[bytes]], work: Path) -> None:
    """Stop the processes, last started first, and remove `work`."""
    for process in reversed(started):
        process.terminate()
        process.wait(10)
    shutil.rmtree(work, ignore_errors=True)
