"""Idle RSS of each process of a gateway: the supervisor and every worker, or the one process.

    .venv/bin/python benchmarks/idlerss.py [--workers 2] [--backend asyncio] [--rounds 3] [CONFIG]

Renders CONFIG (default benchmarks/gateway.hcl, the harness's template) with a listen port and
a backend URL nothing answers on (idle means no traffic), starts `a3s-gateway run` with
`--workers N` (1: a single process, as the harness's `a3s` target runs), waits until every
process listens and a further 2 s, and prints the RSS and USS (memory only this process holds)
of each, in MiB: the median and min over the rounds. The harness (../shared/bench) reports the
sum of RSS over the process tree; this splits it per process, which is what issue 17's
"<= 40 MiB idle per worker" is about.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
GATEWAY = str(Path(sys.executable).with_name("a3s-gateway"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def render(template: Path, port: int) -> str:
    text = template.read_text()
    for key, value in {
        "{listen_host}": "127.0.0.1",
        "{listen_port}": str(port),
        "{backend_url}": f"http://127.0.0.1:{free_port()}",
    }.items():
        text = text.replace(key, value)
    return text


def listening(process: psutil.Process, port: int) -> bool:
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in process.net_connections("tcp")
    )


def measure(config: Path, workers: int, backend: str) -> dict[str, tuple[float, float]]:
    """{process name: (RSS MiB, USS MiB)} of one idle gateway."""
    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".hcl", delete=False) as fh:
        fh.write(render(config, port))
    command = [GATEWAY, "run", "--config", fh.name, "--workers", str(workers), "--backend", backend]
    proc = subprocess.Popen(command, start_new_session=True)
    try:
        top = psutil.Process(proc.pid)
        deadline = time.monotonic() + 60
        while True:
            children = top.children()
            serving = children if workers > 1 else [top]
            if len(serving) == (workers if workers > 1 else 1) and all(listening(p, port) for p in serving):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the gateway did not start")
            time.sleep(0.1)
        time.sleep(2)  # settled: start-up's garbage collected, every task parked
        named = {"process": top} if workers == 1 else {"supervisor": top}
        named |= {f"worker {i}": child for i, child in enumerate(sorted(children, key=lambda c: c.pid))}
        return {
            name: (p.memory_info().rss / 2**20, p.memory_full_info().uss / 2**20)
            for name, p in named.items()
            if workers > 1 or name == "process"
        }
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        os.unlink(fh.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", type=Path, default=HERE / "gateway.hcl")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs = [measure(args.config, args.workers, args.backend) for _ in range(args.rounds)]
    print(f"{'process':12} {'RSS median':>10} {'RSS min':>8} {'USS median':>10} {'USS min':>8}  (MiB)")
    for name in runs[0]:
        rss = [run[name][0] for run in runs]
        uss = [run[name][1] for run in runs]
        print(
            f"{name:12} {statistics.median(rss):10.1f} {min(rss):8.1f} "
            f"{statistics.median(uss):10.1f} {min(uss):8.1f}"
        )


if __name__ == "__main__":
    main()
