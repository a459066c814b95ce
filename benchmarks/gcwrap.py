"""Run the gateway and, when it exits, append its collections and its threads' CPU to a file.

    GCWRAP_OUT=/tmp/gc.out GCWRAP_NAME=both .venv/bin/python benchmarks/gcwrap.py run --config both.hcl

A target for cpucost.py (`"both=env GCWRAP_OUT=... GCWRAP_NAME=both $PY benchmarks/gcwrap.py run
--config both.hcl"`) that says what CPU time alone does not: how many collections of each
generation the cyclic collector ran and how long they took (gc.callbacks), and the CPU time and
context switches of each thread still alive at exit against the process's (the access log's
flush threads have exited by then: their share is the process's CPU less the threads listed).
One line per run: `NAME gc={generation: (collections, ms, objects collected)} threads=[(tid,
cpu s, [voluntary, involuntary switches])] process=cpu s`.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import time
from typing import Any

_STATS = {generation: [0, 0.0, 0] for generation in range(3)}
_STARTED = [0.0]


def _collected(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _STARTED[0] = time.perf_counter()
        return
    stats = _STATS[info["generation"]]
    stats[0] += 1
    stats[1] += time.perf_counter() - _STARTED[0]
    stats[2] += info["collected"]


def _thread(tid: str) -> tuple[str, float, list[str]]:
    with open(f"/proc/self/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    with open(f"/proc/self/task/{tid}/status") as f:
        switches = [line.split()[1] for line in f if "ctxt_switches" in line]
    return tid, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), switches


def _report() -> None:
    threads = [_thread(tid) for tid in sorted(os.listdir("/proc/self/task"))]
    gcs = {
        generation: (n, round(seconds * 1000, 1), found) for generation, (n, seconds, found) in _STATS.items()
    }
    cpu = os.times()
    with open(os.environ.get("GCWRAP_OUT", "gcwrap.out"), "a") as out:
        name = os.environ.get("GCWRAP_NAME", "?")
        out.write(f"{name} gc={gcs} threads={threads} process={round(cpu.user + cpu.system, 2)}\n")


gc.callbacks.append(_collected)
atexit.register(_report)

if __name__ == "__main__":
    from a3s_gateway.runtime.cli import main

    sys.argv[0] = "a3s-gateway"
    sys.exit(main())
