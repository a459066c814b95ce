"""Write docs/benchmarks.md from the harness runs and the profile that benchmarks/run.sh made.

    python benchmarks/report.py --work benchmarks/.work --out docs/benchmarks.md
    python benchmarks/report.py --profile benchmarks/.work/profile/profile.txt   # tables only

Inputs in the work dir: `<run>.dir` (the harness's raw dir of that run, holding results.json
and report.md) and `<run>.cmd` for the runs "pinned" and "two-cpus"; `profile/` from
profile.sh. Figures are medians over rounds, exactly as the harness computes them; ratios are
taken within one run (never across runs), as the harness's README asks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import re
import statistics
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MIB = 2**20


# ------------------------------------------------------------------------------ harness results


class Run:
    """One harness run: medians over rounds of any metric path, per target."""

    def __init__(self, raw_dir: Path, command: str) -> None:
        data = json.loads((raw_dir / "results.json").read_text())
        self.raw_dir = raw_dir
        self.command = command
        self.meta: dict[str, Any] = data["meta"]
        self.runs: dict[str, list[dict[str, Any]]] = data["runs"]
        self.report = (raw_dir / "report.md").read_text() if (raw_dir / "report.md").exists() else ""

    @property
    def rounds(self) -> int:
        return max((len(v) for v in self.runs.values()), default=0)

    def med(self, target: str, *path: str) -> float | None:
        values = [_get(r, path) for r in self.runs.get(target, [])]
        present = [v for v in values if isinstance(v, int | float)]
        return statistics.median(present) if present else None

    def sse_added(self, target: str, pct: str) -> float | None:
        """Per-event latency added over direct: difference of medians, as the harness does."""
        ours, direct = (
            self.med(target, "sse", "sse", "lat_us", pct),
            self.med("direct", "sse", "sse", "lat_us", pct),
        )
        return None if ours is None or direct is None else ours - direct

    def kib_per_stream(self, target: str) -> float | None:
        idle, full = self.med(target, "sse", "rss_idle_mib"), self.med(target, "sse", "mem", "rss_open_mib")
        streams = self.meta["args"].get("mem_streams", 1000)
        return None if idle is None or full is None else (full - idle) * 1024 / streams

    def buffered(self, target: str) -> str:
        p50 = self.med(target, "sse", "sse", "lat_us", "p50")
        first = self.med(target, "sse", "sse", "first_us", "max")
        if p50 is None:
            return "–"
        return "YES" if p50 > 20_000 or (first or 0) > 100_000 else "no"

    def events(self, target: str) -> str:
        got = self.med(target, "sse", "sse", "events")
        args = self.meta["args"]
        return f"{_fmt(got)}/{args['sse_streams'] * args['sse_events']:,}"

    def pinning(self) -> str:
        args = self.meta["args"]
        if not args.get("proxy_cpus"):
            return "no pinning (--no-pin)"
        return (
            f"load generator and backends on CPU {args['load_cpus']}, target on CPU(s) {args['proxy_cpus']}"
        )


def _get(d: Any, path: Iterable[str]) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _fmt(v: float | None, nd: int = 0) -> str:
    return "–" if v is None else f"{v:,.{nd}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if a is None or b is None or b <= 0 else f"{a / b:.2f}"


# ------------------------------------------------------------------------------ metric table

# (label, getter, decimals, higher_is_better)
Metric = tuple[str, Callable[[Run, str], float | None], int, bool]

METRICS: list[Metric] = [
    ("small c64 req/s", lambda r, t: r.med(t, "http", "small64", "rps"), 0, True),
    ("small c64 p50 ms", lambda r, t: r.med(t, "http", "small64", "p50_ms"), 2, False),
    ("small c64 p99 ms", lambda r, t: r.med(t, "http", "small64", "p99_ms"), 2, False),
    ("small c256 req/s", lambda r, t: r.med(t, "http", "small256", "rps"), 0, True),
    ("small c256 p50 ms", lambda r, t: r.med(t, "http", "small256", "p50_ms"), 2, False),
    ("small c256 p99 ms", lambda r, t: r.med(t, "http", "small256", "p99_ms"), 2, False),
    ("64 KiB body MiB/s (c64)", lambda r, t: r.med(t, "http", "large", "mib_s"), 0, True),
    ("SSE event latency p50 µs", lambda r, t: r.med(t, "sse", "sse", "lat_us", "p50"), 0, False),
    ("SSE event latency p99 µs", lambda r, t: r.med(t, "sse", "sse", "lat_us", "p99"), 0, False),
    ("SSE added p50 µs (vs direct)", lambda r, t: r.sse_added(t, "p50"), 0, False),
    ("SSE added p99 µs (vs direct)", lambda r, t: r.sse_added(t, "p99"), 0, False),
    ("RSS idle MiB", lambda r, t: r.med(t, "sse", "rss_idle_mib"), 1, False),
    ("RSS, 1,000 open SSE streams MiB", lambda r, t: r.med(t, "sse", "mem", "rss_open_mib"), 1, False),
    ("KiB per open SSE stream", lambda r, t: r.kib_per_stream(t), 1, False),
    ("target CPU % (c64)", lambda r, t: r.med(t, "http", "small64", "proxy_cpu_pct"), 0, False),
]


def metric_table(run: Run, ours: list[str], refs: list[str]) -> list[str]:
    """Every metric for our targets (with a ×nginx column each) and the references."""
    cols = [*ours, *refs]
    head = ["metric"]
    for name in ours:
        head += [name, f"{name} ×nginx"]
    head += [n for n in refs]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for label, get, nd, _ in METRICS:
        values = {n: get(run, n) for n in cols}
        if all(v is None for v in values.values()):
            continue
        row = [label]
        for name in ours:
            row += [_fmt(values[name], nd), _ratio(values[name], values.get("nginx"))]
        row += [_fmt(values[n], nd) for n in refs]
        lines.append("| " + " | ".join(row) + " |")
    events = ", ".join(f"{n} {run.events(n)} ({run.buffered(n)})" for n in cols if run.runs.get(n))
    lines += ["", f"SSE events received/expected (held back?): {events}."]
    return lines


# ------------------------------------------------------------------------------ targets


def target_rows(pinned: Run | None, two: Run | None) -> list[str]:
    rows = ["| target (issue 3) | measured | met? |", "|---|---|---|"]
    if pinned is not None:
        rows += _pinned_targets(pinned)
    if two is not None:
        one, both = two.med("a3s", "http", "small64", "rps"), two.med("a3s-2w", "http", "small64", "rps")
        one256, both256 = (
            two.med("a3s", "http", "small256", "rps"),
            two.med("a3s-2w", "http", "small256", "rps"),
        )
        ok = one is not None and both is not None and both >= 1.7 * one
        rows.append(
            f"| 2 workers >= 1.7× 1 worker (small req/s, run two-cpus) | c64 {_fmt(both)} vs {_fmt(one)} = "
            f"**{_ratio(both, one)}×**; c256 {_fmt(both256)} vs {_fmt(one256)} = {_ratio(both256, one256)}× | "
            f"{_yes(ok)} |"
        )
    return rows


def issue17_rows(pinned: Run | None, work: Path) -> list[str]:
    """Issue 17's targets: the issue's own figures ("before", its one-run measurement) beside this
    run's, each a ratio to nginx within one run where the target is one."""
    rows = [
        "| target (issue 17) | before (the issue's run) | this run | met? |",
        "|---|---|---|---|",
    ]
    if pinned is not None:
        for label, before, path, unit, goal in (
            ("small req/s (c64) >= 0.25× nginx", "6,558 req/s, 0.08×", ("small64", "rps"), "req/s", 0.25),
            ("64 KiB MiB/s >= 0.5× nginx", "268 MiB/s, 0.16×", ("large", "mib_s"), "MiB/s", 0.5),
        ):
            a, n = pinned.med("a3s", "http", *path), pinned.med("nginx", "http", *path)
            ratio = None if a is None or not n else a / n
            rows.append(
                f"| {label} | {before} | {_fmt(a)} {unit} vs nginx {_fmt(n)} = **{_ratio(a, n)}×** | "
                f"{_yes(ratio is not None and ratio >= goal)} |"
            )
        p99 = pinned.sse_added("a3s", "p99")
        rows.append(
            f"| SSE added p99 <= 300 µs (100 streams) | 1,030 µs | **{_fmt(p99)} µs** (nginx "
            f"{_fmt(pinned.sse_added('nginx', 'p99'))}, h11py {_fmt(pinned.sse_added('h11py', 'p99'))}) | "
            f"{_yes(p99 is not None and p99 <= 300)} |"
        )
    cpu = _cpucost_median(work / "cpucost.md", "a3s")
    rows.append(
        f"| CPU per proxied request <= 70 µs (`cpucost.py`, median) | ~209 µs | "
        f"**{_fmt(cpu, 1)} µs** | {_yes(cpu is not None and cpu <= 70)} |"
    )
    if pinned is not None:
        idle = pinned.med("a3s", "sse", "rss_idle_mib")
        rows.append(
            f"| idle RSS per worker <= 40 MiB (the harness's one-process target) | 77.7 MiB | "
            f"**{_fmt(idle, 1)} MiB** (nginx {_fmt(pinned.med('nginx', 'sse', 'rss_idle_mib'), 1)}) | "
            f"{_yes(idle is not None and idle <= 40)} |"
        )
    return rows


def _cpucost_median(table: Path, target: str) -> float | None:
    """The median µs per request of `target` in a cpucost.py table (its third column)."""
    if not table.exists():
        return None
    for line in table.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 2 and cells[0] == target:
            try:
                return float(cells[2].replace(",", ""))
            except ValueError:
                return None
    return None


def _pinned_targets(run: Run) -> list[str]:
    rows = []
    for label, path in (
        ("small-response req/s c64", ("small64", "rps")),
        ("small-response req/s c256", ("small256", "rps")),
    ):
        a, h = run.med("a3s", "http", *path), run.med("h11py", "http", *path)
        rows.append(
            f"| {label} >= 0.9× h11py | {_fmt(a)} vs {_fmt(h)} = **{_ratio(a, h)}×** (nginx {_fmt(run.med('nginx', 'http', *path))}) | "
            f"{_yes(a is not None and h is not None and a >= 0.9 * h)} |"
        )
    a, h = run.med("a3s", "http", "large", "mib_s"), run.med("h11py", "http", "large", "mib_s")
    rows.append(
        f"| 64 KiB MiB/s >= 0.9× h11py | {_fmt(a)} vs {_fmt(h)} = **{_ratio(a, h)}×** (nginx {_fmt(run.med('nginx', 'http', 'large', 'mib_s'))}) | "
        f"{_yes(a is not None and h is not None and a >= 0.9 * h)} |"
    )
    added, held = run.sse_added("a3s", "p50"), run.buffered("a3s")
    rows.append(
        f"| SSE: no event held back, added p50 <= 500 µs (100 streams) | held back: {held}; events {run.events('a3s')}; "
        f"added p50 **{_fmt(added)} µs** (nginx {_fmt(run.sse_added('nginx', 'p50'))}, h11py {_fmt(run.sse_added('h11py', 'p50'))}) | "
        f"{_yes(held == 'no' and added is not None and added <= 500)} |"
    )
    per = run.kib_per_stream("a3s")
    rows.append(
        f"| RSS <= 16 KiB per open SSE stream above idle | **{_fmt(per, 1)} KiB** (nginx {_fmt(run.kib_per_stream('nginx'), 1)}, "
        f"h11py {_fmt(run.kib_per_stream('h11py'), 1)}) | {_yes(per is not None and per <= 16)} |"
    )
    return rows


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


# ------------------------------------------------------------------------------ profile

# First match wins: (category, predicate on the leaf frame's file and function).
CATEGORIES: list[tuple[str, Callable[[str, str], bool]]] = [
    ("h11 parsing and serialising (library)", lambda f, fn: f.startswith("h11/")),
    (
        "our HTTP/1.1 adapters (protocols/http1.py around h11; http1_fast.py, _fast_*.py on llhttp)",
        lambda f, fn: (
            f.endswith(("protocols/http1.py", "protocols/http1_fast.py"))
            or f.startswith("runtime/protocols/_fast_")
        ),
    ),
    ("socket streams (asyncio_stream.py)", lambda f, fn: f.endswith("runtime/asyncio_stream.py")),
    (
        "event dataclasses and request/response objects",
        lambda f, fn: f in ("<string>", "runtime/events.py", "runtime/api.py"),
    ),
    ("header hygiene (proxy.py)", lambda f, fn: f.endswith("runtime/proxy.py")),
    (
        "routing and graph dispatch (router, graph, service, balancer, rule matchers)",
        lambda f, fn: (
            f.endswith(
                (
                    "runtime/router.py",
                    "runtime/graph.py",
                    "runtime/service.py",
                    "runtime/pipeline.py",
                    "runtime/gateway.py",
                )
            )
            or f.startswith(("compiler/rules", "stdlib/balancers"))
        ),
    ),
    ("upstream client and pool (upstream/)", lambda f, fn: f.startswith("runtime/upstream/")),
    (
        "client connection loop (connection.py, listener.py, ingress.py)",
        lambda f, fn: f.endswith(
            ("runtime/connection.py", "runtime/listener.py", "runtime/ingress.py", "runtime/deadlines.py")
        ),
    ),
    ("socket syscalls: send/recv (netio.py)", lambda f, fn: f.endswith("runtime/netio.py")),
    (
        "anyio (readiness waits, checkpoints)",
        lambda f, fn: f.startswith(("anyio/", "sniffio/")) or f == "weakref.py",
    ),
    ("event loop (uvloop in C; asyncio)", lambda f, fn: f.startswith("asyncio/") or f == ""),
    (
        "h11 parsing and serialising (library)",
        lambda f, fn: f == "<frozen _collections_abc>",
    ),  # h11's Headers
]


def parse_profile(path: Path) -> tuple[int, Counter[tuple[str, str, int]]]:
    """py-spy raw output -> (samples, self samples per (file, function, line))."""
    leaves: Counter[tuple[str, str, int]] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        leaf = stack.split(";")[-1]
        m = re.match(r"(.*) \((.*):(\d+)\)$", leaf)
        fn, file, lineno = (
            (m.group(1), _short(m.group(2)), int(m.group(3))) if m else (leaf or "(native)", "", 0)
        )
        leaves[(file, fn, lineno)] += n
    return total, leaves


def _short(file: str) -> str:
    """A path relative to the package root: `runtime/netio.py`, `h11/_util.py`, `asyncio/...`."""
    for marker in ("site-packages/", "/lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    # The project's modules, whether imported from the tree or from run.sh's snapshot copy.
    return file.split("a3s_gateway/", 1)[1] if "a3s_gateway/" in file else file


def categorise(file: str, fn: str) -> str:
    for name, test in CATEGORIES:
        if test(file, fn):
            return name
    return "other"


def profile_tables(path: Path, top: int = 25) -> list[str]:
    total, leaves = parse_profile(path)
    if not total:
        return ["(no samples)"]
    by_cat: Counter[str] = Counter()
    by_fn: Counter[tuple[str, str]] = Counter()
    for (file, fn, _), n in leaves.items():
        by_cat[categorise(file, fn)] += n
        by_fn[(file, fn)] += n
    out = ["| where (self time of the innermost Python frame) | share |", "|---|---:|"]
    out += [f"| {cat} | {100 * n / total:.1f} % |" for cat, n in by_cat.most_common()]
    out += ["", f"Top {top} functions by self time ({total:,} samples):", ""]
    out += ["| function | file | self % |", "|---|---|---:|"]
    out += [
        f"| `{fn}` | {file or '(no Python frame)'} | {100 * n / total:.1f} |"
        for (file, fn), n in by_fn.most_common(top)
    ]
    return out


# ------------------------------------------------------------------------------ document


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    distro = "?"
    try:
        distro = (
            dict(
                line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line
            )
            .get("PRETTY_NAME", "?")
            .strip('"')
        )
    except OSError:
        pass
    import os

    return (
        f"{os.cpu_count()} vCPUs ({cpu}), {mem} RAM, {distro}, kernel {platform.release()}, "
        f"Python {platform.python_version()}; {_versions()}"
    )


def _versions() -> str:
    parts = []
    for name in ("uvloop", "h11", "anyio"):
        try:
            from importlib.metadata import version

            parts.append(f"{name} {version(name)}")
        except Exception:  # a missing package is just not reported
            pass
    for cmd in (["nginx", "-v"], ["wrk", "-v"]):
        try:
            o = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
            first = (o.stdout + o.stderr).strip().splitlines()[0]
            parts.append(first.replace("nginx version: ", "").split(" [")[0])
        except (OSError, IndexError, subprocess.SubprocessError):
            pass
    return ", ".join(parts)


def load_run(work: Path, name: str) -> Run | None:
    marker = work / f"{name}.dir"
    if not marker.exists():
        return None
    raw = Path(marker.read_text().strip())
    if not (raw / "results.json").exists():
        return None
    cmd = (work / f"{name}.cmd").read_text().strip() if (work / f"{name}.cmd").exists() else "?"
    return Run(raw, cmd)


def harness_section(run: Run, title: str) -> list[str]:
    """The harness's own report for a run, demoted two heading levels, minus its preamble."""
    text = run.report
    text = re.sub(r"^## .*\n", "", text, flags=re.M)
    text = re.sub(r"^### ", "##### ", text, flags=re.M)
    text = re.sub(r"^#### ", "##### ", text, flags=re.M)
    text = re.sub(
        r"Raw data: results/raw/", "Raw data (not committed): benchmarks/.work/bench/results/raw/", text
    )
    return [f"#### {title}", "", text.strip(), ""]


def write(work: Path, out: Path, notes: Path | None) -> None:
    pinned, two = load_run(work, "pinned"), load_run(work, "two-cpus")
    offset = (work / "port-offset").read_text().strip() if (work / "port-offset").exists() else "0"
    doc = [
        "# Benchmarks",
        "",
        "<!-- Generated by `make bench` (benchmarks/run.sh -> benchmarks/report.py); the analysis",
        "     sections come from benchmarks/analysis.md. Re-run to refresh, do not edit by hand. -->",
        "",
        f"Generated {dt.datetime.now():%Y-%m-%d %H:%M}. Machine: {machine()}.",
        "",
        "a3s-gateway (`benchmarks/gateway.hcl`: one entrypoint, one router ``PathPrefix(`/`)``, one service,",
        "no middleware) against nginx 1 worker and `h11py`, the harness's ~150-line asyncio + h11 + uvloop",
        "relay (no routing, no middleware: the pure-Python h11 ceiling), all proxying the same backends,",
        "measured by the shared harness (`../shared/bench`, see its README for every test).",
        "",
        "## Reproduce",
        "",
        "```sh",
        "make bench                       # ~50 min: both runs (3 rounds each), profile, CPU cost, this file",
        "BENCH_QUICK=1 make bench         # smoke test: 1 round, 3 s runs",
        "BENCH_RUNS=pinned make bench     # one step; the others are reported from their last run",
        'BENCH_RUNS="tcprelay udprelay" make bench   # the layer-4 relays only (~5 min)',
        "```",
        "",
    ]
    for name, run in (("pinned", pinned), ("two-cpus", two)):
        if run is not None:
            doc.append(
                f"* run **{name}** ({run.rounds} rounds, {run.meta['stamp']}; {run.pinning()}): "
                f"`.venv/bin/python benchmarks/.work/bench/bench.py {run.command.removeprefix('bench.py ')}`"
            )
    if offset != "0":
        doc += [
            "",
            f"Ports: the harness's fixed ports were taken by other jobs on this machine, so run.sh used "
            f"its scratch copy with every port + {offset} (9001 -> {9001 + int(offset)}, ...); nothing else differs.",
        ]
    code = work / "code.txt"
    if code.exists():
        facts = dict(line.split(": ", 1) for line in code.read_text().splitlines() if ": " in line)
        doc += [
            "",
            f"Code measured: commit {facts.get('commit', '?')} plus the working tree's uncommitted changes "
            f"({facts.get('uncommitted', '?')}), copied at {facts.get('snapshot', '?')} and imported from that "
            "copy by every target, so edits made during the run did not leak into it.",
        ]
    doc += [""]
    if notes is not None and notes.exists():
        doc += [notes.read_text().strip(), ""]
    doc += ["## Targets", "", *issue17_rows(pinned, work), "", *target_rows(pinned, two), ""]
    if pinned is not None:
        doc += [
            "## One core each (run pinned)",
            "",
            f"{pinned.pinning()}. Medians of {pinned.rounds} rounds; ×nginx = ours / nginx in the same run "
            "(for latencies and memory, lower is better).",
            "",
            *metric_table(pinned, ["a3s"], ["nginx", "h11py", "direct"]),
            "",
        ]
    if two is not None:
        doc += [
            "## 1 and 2 workers (run two-cpus)",
            "",
            f"{two.pinning()}: the gateway may use both CPUs, but CPU 0 also runs wrk, the backends and "
            "the SSE client, so a second worker gets what they leave. Both worker counts (and the references) "
            "are measured in this one run, the same way.",
            "",
            *metric_table(two, ["a3s", "a3s-2w"], ["nginx", "h11py", "direct"]),
            "",
        ]
    prof = work / "profile" / "profile.txt"
    if prof.exists():
        cmd = (
            (work / "profile" / "command.txt").read_text().strip()
            if (work / "profile" / "command.txt").exists()
            else ""
        )
        wrk = (work / "profile" / "wrk.txt").read_text() if (work / "profile" / "wrk.txt").exists() else ""
        rps = re.search(r"Requests/sec:\s+([\d.]+)", wrk)
        doc += [
            "## Where the time goes (profile)",
            "",
            "py-spy sampling a 1-worker gateway on its own core under `wrk -c64` small responses "
            f"({f'{float(rps.group(1)):.0f} req/s while sampled' if rps else 'see wrk.txt'}). Self time is "
            "attributed to the innermost *Python* frame, so a C call (a socket syscall, uvloop's epoll, "
            "a bytes join) counts where it is called from.",
            "",
            "```",
            cmd,
            "```",
            "",
            *profile_tables(prof),
            "",
        ]
    doc += cost_section(
        work,
        "cpucost",
        "CPU per request",
        "Throughput moves with other jobs' load; the CPU time the proxy spends per request much less "
        "(interference only adds to it, so the minimum over rounds is the robust figure). "
        "`benchmarks/cpucost.py`: the target alone on CPU 1, backend nginx and `wrk -t2 -c64` on CPU 0, "
        "small responses, target's process CPU time / requests served.",
    )
    doc += cost_section(
        work,
        "ssecost",
        "CPU per SSE event",
        "`benchmarks/cpucost.py --sse`: the harness's SSE backend and client on CPU 0, the target alone "
        "on CPU 1; 100 streams, an event every 5 ms each (20,000 events/s offered, more than one Python "
        "core relays, so the target is never idle); target's process CPU time / events delivered, "
        "stream set-up included.",
    )
    doc += cost_section(
        work,
        "llmcost",
        "LLM protocol conversion",
        "`benchmarks/llmcost.py`: what `llm-convert` (docs/llm.md) adds over plain proxying. The library "
        "alone, in process; then a running gateway (CPU 1) in front of the demo backend (CPU 0, "
        "100-token replies), each converted route compared with the plain route that relays the same "
        "upstream format.",
    )
    doc += cost_section(
        work,
        "llmlatency",
        "LLM stream event latency",
        "`benchmarks/llmlatency.py`: a stamping backend (CPU 0) streams replies of 100 events, each "
        "event carrying its send time, to a client (CPU 0) that keeps 100 streams open (a steady state: "
        "starts spread, streams back to back) and takes each event's receive time from the kernel "
        "(SO_TIMESTAMPNS), directly and through the gateway (CPU 1) on the routes of the section above. "
        "The gateway's share is a route's percentile minus the direct one. With the streams' phases "
        "spread over the interval, as independent streams are (the budget's case), with normal "
        "scheduling and then SCHED_FIFO where permitted; then with every stream's events sent at the "
        "same instants (bursts of 100 events, relayed one after another).",
    )
    doc += cost_section(
        work,
        "routecost",
        "CPU per request routed by model",
        "`benchmarks/cpucost.py --body benchmarks/chat-request.json`: the same POSTed chat request "
        "(an alias, renamed upstream, with a fallback) through plain proxying (`benchmarks/gateway.hcl`) "
        "and through a `model_router` service in front of the same backend "
        "(`benchmarks/model-router.hcl`); the difference is what routing by model costs.",
    )
    doc += cost_section(
        work,
        "tcprelay",
        "TCP relay (issue 16)",
        "`benchmarks/tcprelay.py`: one connection writing 64 KiB buffers through a TCP entrypoint "
        "(one ``HostSNI(`*`)`` router, one worker, uvloop) and through HAProxy 1 thread in `mode tcp`, to "
        "the same sink, in one run; then the RSS each proxy adds per idle relayed connection, 1,000 "
        "of them, on a fresh process. The issue asks for >= 1.5 GiB/s through one core and <= 24 KiB "
        "per idle connection.",
    )
    doc += cost_section(
        work,
        "udprelay",
        "UDP relay (issue 16)",
        "`benchmarks/udprelay.py`: 64 datagrams of 64 bytes in flight over 1,000 sessions (one client "
        "socket each) to a UDP echo backend, through a UDP entrypoint (one worker, asyncio + uvloop, "
        "and on trio) and through nginx 1 worker (`stream`, `listen ... udp`), rounds interleaved; "
        "answered datagrams per CPU-second of the proxy. The issue asks for >= 50k datagrams per "
        "second through one core.",
    )
    doc += cost_section(
        work,
        "routeindex",
        "Route lookup against the number of routers",
        "`benchmarks/routeindex.py`: the router table of one entrypoint with 10, 1,000 and 10,000 "
        "routers shaped like a provider-fed fleet (`benchmarks/routers_hcl.py`: `Host && PathPrefix`, "
        "`Host`, `PathPrefix`, `Host && Path`), in process: µs of CPU per lookup through the router "
        "index (compiler/rules/index.py) and through the linear scan it replaced, for a request only "
        "the last router in priority order takes and for one no router takes.",
    )
    doc += cost_section(
        work,
        "compilecost",
        "Compiling 10,000 routers (issues 17 and 18)",
        "`benchmarks/compilecost.py`: the 10,000-router file of `benchmarks/routers_hcl.py`, CPU seconds "
        "(user + system, all threads) of `a3s-gateway compile --check` in a child process (imports "
        "included), and of `Gateway.reload` in a running gateway (asyncio) with one router changed: "
        "compile, diff, build beside the running generation, swap. Rounds alternate the two. Issue 17 "
        "asks for the first under 2 s, issue 18 for the second.",
    )
    doc += cost_section(
        work,
        "prefixcache",
        "Prefix-cache-aware balancing (issue 20)",
        PREFIXCACHE_TEXT,
    )
    doc += [
        "## Caveats",
        "",
        "* This is a shared 2-vCPU VM: other jobs (test suites) may run during these measurements. The harness "
        "records their CPU use during every measurement (tables below, per run) and repeats a measurement "
        "once when it exceeds 25 % of a core. Differences under ~15 % in throughput, ~0.3 ms in SSE p50 "
        "or ~5 ms in p99 are noise here (see the harness baseline).",
        "* With one core per target, the direct baseline and nginx are partly limited by CPU 0 (wrk and "
        "the backends); the Python targets saturate their own core (target CPU % ≈ 100).",
        "* c256 p99 of saturated Python targets is dominated by a connection storm at start (wrk opens "
        '256 connections at once): read it as "has stragglers".',
        "",
    ]
    doc += ["## Appendix: the harness's reports", ""]
    for name, run in (("pinned", pinned), ("two-cpus", two)):
        if run is not None:
            doc += harness_section(run, f"Run {name}")
    out.write_text("\n".join(doc).rstrip() + "\n")


PREFIXCACHE_TEXT = (
    "`benchmarks/prefixcache.py`: demo replicas (each its own process) simulating a model server's "
    "prefix cache (64-byte blocks in an LRU, a prefill delay per block not cached before the first "
    "token) behind one gateway worker balancing with `prefix-cache`, `round-robin` or "
    "`least-connections`; agent-like conversations sharing a few ~3.5 KiB system prompts, each turn "
    "resending the history, streamed. The hit rate is the replicas' cached blocks over prompt blocks; "
    "the time to first token is the client's, to the stream's first chunk. Each round restarts the "
    "replicas (empty caches) and runs the strategies in turn. The hit rate does not depend on the "
    "machine's load; the times do (a shared machine: read the ratios)."
)


def cost_section(work: Path, step: str, title: str, text: str) -> list[str]:
    """The section of a `cpucost.py` step: its table (`<step>.md`) under the command that made it."""
    table = work / f"{step}.md"
    if not table.exists():
        return []
    command = work / f"{step}.cmd"
    cmd = command.read_text().strip() if command.exists() else ""
    return [f"## {title}", "", text, "", "```", cmd, "```", "", table.read_text().strip(), ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".work")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    ap.add_argument("--notes", type=Path, default=ROOT / "benchmarks" / "analysis.md")
    ap.add_argument("--profile", type=Path, help="only print the profile tables of this py-spy raw file")
    args = ap.parse_args()
    if args.profile:
        print("\n".join(profile_tables(args.profile)))
        return
    write(args.work, args.out, args.notes)


if __name__ == "__main__":
    main()
