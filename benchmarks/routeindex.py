"""Route lookup with 10 to 10,000 routers: CPU time, not wall time.

    .venv/bin/python benchmarks/routeindex.py [--rounds 5] [--lookups 20000] [--sizes 10,1000,10000]

Routers are a provider-fed fleet (benchmarks/routers_hcl.py: `Host && PathPrefix`, `Host`,
`PathPrefix`, `Host && Path`). For each size this builds the entrypoint's router table as a
running gateway does (runtime/router.py, with its index) and times, in process CPU time:

- `last`: a request only the last router in priority order takes (the worst case of a scan);
- `miss`: a request no router takes (the gateway's 404);

each through the table (`RouterTable.route`: target normalised, index looked up, candidates
tried), and through the linear scan it replaced (every matcher in priority order, same request
objects) for comparison. Sizes and variants are interleaved round by round, so load from other
jobs spreads over all of them; the table gives the median and the minimum over rounds, in µs per
lookup.

Compiling the 10,000-router file is `benchmarks/compilecost.py`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from a3s_gateway.runtime.api import Headers, Request  # noqa: E402
from a3s_gateway.runtime.router import RouterTable, compile_rule  # noqa: E402
from benchmarks.routers_hcl import request_for, router_rule, router_table  # noqa: E402


def _linear(table: RouterTable) -> Callable[[Request], str | None]:
    """The scan the index replaced: every matcher, in the table's order (the router's name)."""
    routes = [(compile_rule(router_rule(int(name[1:]))).matches, name) for name in table.routers]

    def route(request: Request) -> str | None:
        for matches, name in routes:
            if matches(request):
                return name
        return None

    return route


def _cpu_per_call(call: Callable[[Request], object], request: Request, lookups: int) -> float:
    start = time.process_time()
    for _ in range(lookups):
        call(request)
    return (time.process_time() - start) / lookups * 1e6


def lookups(sizes: list[int], rounds: int, count: int) -> list[str]:
    cases: list[tuple[str, int, str, Callable[[Request], object], Request, int]] = []
    for n in sizes:
        table = router_table(n)
        last = int(table.routers[-1][1:])
        host, path = request_for(last)
        hit = Request("GET", path, Headers.from_pairs([("host", host)]))
        miss = Request("GET", "/nothing/here", Headers.from_pairs([("host", "nowhere.example.net")]))
        found = table.route(hit)
        assert found is not None and found.info.router == f"r{last}" and table.route(miss) is None
        scan = _linear(table)
        # The scan costs up to n matcher calls: fewer lookups keep each round short.
        scan_count = max(20, count * 10 // max(n, 10))
        cases += [
            ("index", n, "last", table.route, hit, count),
            ("index", n, "miss", table.route, miss, count),
            ("scan", n, "last", scan, hit, scan_count),
            ("scan", n, "miss", scan, miss, scan_count),
        ]
    samples: dict[tuple[str, int, str], list[float]] = {(v, n, w): [] for v, n, w, *_ in cases}
    for _ in range(rounds):
        for variant, n, which, call, request, k in cases:
            samples[(variant, n, which)].append(_cpu_per_call(call, request, k))
    out = [
        "| routers | request | index µs/lookup (median / min) | linear scan µs/lookup (median / min) |",
        "|---|---|---|---|",
    ]
    for n in sizes:
        for which in ("last", "miss"):
            idx, scan = samples[("index", n, which)], samples[("scan", n, which)]
            label = "matches the last router" if which == "last" else "no match (404)"
            out.append(
                f"| {n:,} | {label} | {statistics.median(idx):.2f} / {min(idx):.2f} "
                f"| {statistics.median(scan):.1f} / {min(scan):.1f} |"
            )
    small, large = sizes[0], sizes[-1]
    for which in ("last", "miss"):
        ratio = min(samples[("index", large, which)]) / min(samples[("index", small, which)])
        out.append(f"\n{large:,} routers cost {ratio:.2f}× what {small:,} cost ({which}, min over rounds).")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--lookups", type=int, default=20_000)
    ap.add_argument("--sizes", default="10,1000,10000")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print("\n".join(lookups(sizes, args.rounds, args.lookups)))


if __name__ == "__main__":
    main()
