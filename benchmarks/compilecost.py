"""Compiling a 10,000-router configuration: `compile --check`, and a reload of a running gateway.

    .venv/bin/python benchmarks/compilecost.py [--rounds 5] [--routers 10000]

Issue 17 asks for `compile --check` of a 10,000-router file in under 2 s, issue 18 for a reload
of one in under 2 s. The file is a provider-fed fleet (`benchmarks/routers_hcl.py`). Each round
measures, in CPU time (user + system, all threads), not wall time:

- `compile --check`: the CLI in a child process, from exec to exit (imports included);
- `reload`: a child process starts a gateway on the file (asyncio), then reloads it with one
  router's rule changed and back again, timing each `Gateway.reload` (compile, diff, build beside
  the running generation, swap): the table gives the mean of the two per round.

The two alternate round by round, so load from other jobs spreads over both; the table gives the
median and the minimum over rounds, and the peak RSS. Python's bytecode cache is allowed (one
untimed run writes it), as for an installed package, even where PYTHONDONTWRITEBYTECODE is set.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.routers_hcl import router_rule, routers_hcl  # noqa: E402


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def compile_check(config: Path) -> tuple[float, int]:
    """CPU seconds and peak RSS (KiB) of `a3s-gateway compile --check config`."""
    pid = os.posix_spawn(
        str(ROOT / ".venv" / "bin" / "a3s-gateway"),
        ["a3s-gateway", "compile", "--check", str(config)],
        _env(),
        file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)],
    )
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"compile --check of {config} failed")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def reloads(config: Path, changed: Path) -> tuple[list[float], int]:
    """CPU seconds of each reload in a fresh gateway process, and its peak RSS (KiB)."""
    out = subprocess.run(
        [sys.executable, __file__, "--reload-child", str(config), str(changed)],
        env=_env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(out.splitlines()[-1])
    return result["reloads"], result["maxrss"]


def _reload_child(config: str, changed: str) -> None:
    import resource

    import anyio

    from a3s_gateway.runtime.gateway import Gateway, settle_heap

    async def run() -> list[float]:
        cpu: list[float] = []
        async with Gateway(config) as gateway:
            settle_heap()  # as `a3s-gateway run` does once serving
            for target in (changed, config):
                start = time.process_time()
                plan = await gateway.reload(target)
                cpu.append(time.process_time() - start)
                assert plan.changed == ("router:r0",), plan.summary()
        return cpu

    cpu = anyio.run(run)
    print(json.dumps({"reloads": cpu, "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--routers", type=int, default=10_000)
    ap.add_argument("--reload-child", nargs=2, metavar=("CONFIG", "CHANGED"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.reload_child:
        _reload_child(*args.reload_child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        config, changed = Path(tmp) / "routers.hcl", Path(tmp) / "routers-changed.hcl"
        text = routers_hcl(args.routers)
        config.write_text(text)
        changed.write_text(text.replace(f'"{router_rule(0)}"', '"Host(`changed.example.com`)"', 1))
        compile_check(config)  # untimed: writes the bytecode cache
        check_cpu: list[float] = []
        reload_cpu: list[float] = []
        check_rss = reload_rss = 0
        for _ in range(args.rounds):
            cpu, rss = compile_check(config)
            check_cpu.append(cpu)
            check_rss = max(check_rss, rss)
            pair, rss = reloads(config, changed)
            reload_cpu.append(statistics.mean(pair))
            reload_rss = max(reload_rss, rss)
    n = f"{args.routers:,}"
    print(
        "\n".join(
            [
                "| measure | CPU s, median | CPU s, min | peak RSS MiB |",
                "|---|---|---|---|",
                f"| `compile --check`, {n} routers | {statistics.median(check_cpu):.2f} "
                f"| {min(check_cpu):.2f} | {check_rss / 1024:.0f} |",
                f"| reload of a running gateway, {n} routers (one changed) | "
                f"{statistics.median(reload_cpu):.2f} | {min(reload_cpu):.2f} | {reload_rss / 1024:.0f} |",
            ]
        )
    )


if __name__ == "__main__":
    main()
