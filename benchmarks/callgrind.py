"""Instructions per proxied request (callgrind): a deterministic measure finer than callcount.py.

    .venv/bin/python benchmarks/callgrind.py [--port-base 9500] NAME[=EXTRA_HCL] ...

cProfile counts Python calls; a C call and a Python call count the same, and what happens inside
them (a float's repr, a dict built and read back) is not seen. Valgrind's callgrind counts the
instructions the gateway's process executes, which do not move with the machine's load. For
each NAME the gateway (benchmarks/gateway.hcl, plus the HCL in EXTRA_HCL when given) runs under
`valgrind --tool=callgrind` twice, serving N1 and then N2 keep-alive requests (8 connections,
`GET /` to the nginx backend of callcount.py), and the figure is (Ir(N2) - Ir(N1)) / (N2 - N1):
start-up and shutdown cancel out. A run takes a minute or two (Python under valgrind).

The gateway runs with PYTHONHASHSEED=0: with a random seed each process hashes strings
differently, so its dicts collide differently, and the start-up's dict probing alone moved the
figure by up to 14,000 instructions per request between two runs of the same tree.

With `--cache-sim`, callgrind also simulates the caches (its model of a first-level and a
last-level cache, `--cache-sim=yes`) and each of its events is reported per request: reads and
writes of data (Dr, Dw) and the misses of each level (I1mr, D1mr, D1mw; ILmr, DLmr, DLmw).
Two configurations with the same instructions can differ in CPU time by their misses: a miss
of the last level costs a hundred cycles or more, and the simulated counts, like the
instructions, do not move with the machine's load.

The output files are kept (their paths are printed) for `callgrind_annotate`.
Needs valgrind, nginx and the harness copy made by benchmarks/run.sh (benchmarks/.work/bench).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import callcount


def instructions(
    work: Path, config: Path, requests: int, cache_sim: bool = False
) -> tuple[dict[str, int], Path]:
    """The events callgrind counts over a gateway's whole life while it serves `requests`: the
    instructions (`Ir`), and with `cache_sim` the simulated caches' events too."""
    out = work / f"callgrind-{time.monotonic_ns()}.out"
    run = [
        sys.executable,
        str(work / "run_gateway.py"),
        "run",
        "--config",
        str(config),
        "--log-level",
        "warning",
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dict layout in every run (docstring)
    tool = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    if cache_sim:
        tool.append("--cache-sim=yes")
    gw = subprocess.Popen([*tool, *run], env=env)
    try:
        # Under valgrind the start takes a minute or more, several on a loaded machine.
        callcount.wait_tcp(callcount.LISTEN, tries=12000)
        callcount.send(requests, callcount.request_bytes(None))
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait(600)
    events: list[str] = []
    for line in out.read_text(errors="replace").splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith(("totals:", "summary:")):
            return dict(zip(events, map(int, line.split()[1:]), strict=True)), out
    raise SystemExit(f"{out}: no totals")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("targets", nargs="+", metavar="NAME[=EXTRA_HCL]")
    ap.add_argument("--n1", type=int, default=80)
    ap.add_argument("--n2", type=int, default=400)
    ap.add_argument("--port-base", type=int, default=9500)
    ap.add_argument("--cache-sim", action="store_true", help="also the simulated caches' events (docstring)")
    args = ap.parse_args()
    callcount.BACKEND, callcount.LISTEN = args.port_base + 1, args.port_base + 100
    work = Path(tempfile.mkdtemp(prefix="callgrind-"))
    (work / "run_gateway.py").write_text(callcount.RUNNER)
    gateway = callcount.gateway_hcl(callcount.ROOT / "benchmarks" / "gateway.hcl")
    with callcount.nginx_backend(work):
        names = CACHE_EVENTS if args.cache_sim else ("Ir",)
        if args.cache_sim:
            print(
                "| target | "
                + " | ".join(names)
                + " |\n|---|"
                + "---:|" * len(names)
                + "  (per proxied request)"
            )
        else:
            print("| target | instructions per proxied request |\n|---|---:|")
        for target in args.targets:
            name, _, extra = target.partition("=")
            config = work / f"gateway-{name}.hcl"
            config.write_text(gateway + (Path(extra).read_text() if extra else ""))
            low, _ = instructions(work, config, args.n1, args.cache_sim)
            high, out = instructions(work, config, args.n2, args.cache_sim)
            per = [(high.get(e, 0) - low.get(e, 0)) / (args.n2 - args.n1) for e in names]
            print(f"| {name} | " + " | ".join(f"{v:,.0f}" for v in per) + f" |  <!-- {out} -->", flush=True)


# callgrind's events with --cache-sim=yes, in its order: instructions, data reads and writes, and
# the misses of the first level (I1, D1) and the last level (IL, DL) for each.
CACHE_EVENTS = ("Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw")


if __name__ == "__main__":
    main()
