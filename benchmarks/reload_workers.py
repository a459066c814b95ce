"""How long a reload takes under `run --workers 2`, from the supervisor's compile to the last swap.

    .venv/bin/python benchmarks/reload_workers.py 10000 31500    # routers, the entrypoint's port

Starts the gateway on a fleet of N routers (benchmarks/routers_hcl.py), then reloads it six
times (SIGHUP, one router more each time) and prints, for each, the time from the supervisor's
`generation G compiled` to the second worker's `reloaded (generation G)`, read from their log
timestamps (ms resolution). The compile itself is before that point: what is measured is the
hand-off, the workers' reading and building of the graph, and the swap, that is what the
two-phase reload (runtime/twophase.py) could slow down.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.routers_hcl import routers_hcl

GATEWAY = str(Path(sys.executable).with_name("a3s-gateway"))


def stamp(line: str) -> datetime:
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")


def main(routers: int, port: int) -> None:
    base = routers_hcl(routers).replace("127.0.0.1:0", f"127.0.0.1:{port}")
    with tempfile.TemporaryDirectory() as tmp:
        config, log = Path(tmp) / "gw.hcl", Path(tmp) / "gateway.log"
        config.write_text(base)
        with log.open("w") as out:
            proc = subprocess.Popen([GATEWAY, "run", "-c", str(config), "--workers", "2"], stderr=out)

        def wait(pattern: str, count: int) -> list[str]:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                lines = log.read_text().splitlines()
                if sum(bool(re.search(pattern, line)) for line in lines) >= count:
                    return lines
                time.sleep(0.05)
            raise SystemExit(f"no {pattern!r} in the log:\n{log.read_text()[-3000:]}")

        try:
            wait("gateway running", 2)
            took = []
            for generation in range(2, 8):
                extra = f'routers "extra{generation}" {{\n  rule = "Path(`/x{generation}`)"\n  service = "s0"\n}}\n'
                config.write_text(base + extra)
                proc.send_signal(signal.SIGHUP)
                lines = wait(rf"reloaded \(generation {generation}\)", 2)
                compiled = next(stamp(line) for line in lines if f"generation {generation} compiled" in line)
                swapped = max(stamp(line) for line in lines if f"reloaded (generation {generation})" in line)
                took.append((swapped - compiled).total_seconds() * 1000)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    print(f"{routers} routers, ms from compiled to both swapped:", [round(t) for t in took])
    print("median", sorted(took)[len(took) // 2])


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
