"""Prefix-cache-aware balancing against round-robin and least-connections: cache hit rate and time
to first token over demo replicas that simulate a prefix cache.

    .venv/bin/python benchmarks/prefixcache.py [--rounds 3] [--replicas 4] [--conversations 48]
        [--turns 4] [--systems 8] [--concurrency 12] [--cache-blocks 256] [--prefill-delay 0.002]
        [--load-factor 1.25]
        [--port-base 9900]

The replicas are demo backends (runtime/demo_backend.py), each its own process, each simulating
a model server's prefix cache (runtime/demo_prefix_cache.py): 64-byte blocks, an LRU of
`--cache-blocks` blocks, and `--prefill-delay` seconds of prefill per block not cached before the
first token. The gateway (one worker, its own process) balances over them with the strategy
under test. The workload is agent-like: `--conversations` conversations, each on one of
`--systems` shared system prompts (about 3 KiB each, as agents' instructions and tool
descriptions are), each of `--turns` streamed chat turns that resend the whole history, with
`--concurrency` conversations in progress at once.

For each request: the time to first token (the first body chunk of the stream: the demo's
whole reply waits for the prefill), and the replica's `x-demo-prefix-cache: cached/total` blocks.
Reported per strategy: the cache hit rate (cached blocks / prompt blocks, as vLLM's prefix cache
hit rate counts tokens) and the p50 and p90 time to first token, the median over rounds, each
round restarting the replicas (empty caches) and running the strategies in turn (their order
rotating from round to round).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from cpucost import wait_tcp  # noqa: E402

STRATEGIES = ("prefix-cache", "round-robin", "least-connections")
_WORDS = [
    "plan",
    "tool",
    "call",
    "observe",
    "reflect",
    "answer",
    "search",
    "file",
    "read",
    "write",
    "test",
    "deploy",
    "verify",
    "summarize",
]


# --------------------------------------------------------------------------- processes


def serve_demo(port: int, cache_blocks: int, prefill_delay: float) -> None:
    """Run one demo replica in this process (the `--serve-demo` mode)."""
    import anyio

    from a3s_gateway.runtime.demo_backend import DemoBackend, DemoOptions

    options = DemoOptions(
        token_delay=0.001, reply_tokens=8, prefix_cache=cache_blocks, prefill_delay=prefill_delay
    )
    backend = DemoBackend(options, port=port)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(backend.serve)
            print("ready", flush=True)
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    tg.cancel_scope.cancel()
                    return

    anyio.run(main, backend="asyncio", backend_options={"use_uvloop": True})


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_replicas(args: argparse.Namespace) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(args.replicas):
        cmd = [sys.executable, __file__, "--serve-demo", str(args.port_base + 1 + i),
               "--cache-blocks", str(args.cache_blocks), "--prefill-delay", str(args.prefill_delay)]  # fmt: skip
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL))
    for i in range(args.replicas):
        wait_tcp(args.port_base + 1 + i)
    return procs


def gateway_config(args: argparse.Namespace, strategy: str) -> str:
    options = (
        f"\n    prefix-cache {{ load_factor = {args.load_factor} }}" if strategy == "prefix-cache" else ""
    )
    servers = ", ".join(
        f'{{ url = "http://127.0.0.1:{args.port_base + 1 + i}" }}' for i in range(args.replicas)
    )
    return f"""
entrypoints "web" {{ address = "127.0.0.1:{args.port_base}" }}
routers "llm" {{
  rule    = "PathPrefix(`/`)"
  service = "llm"
}}
services "llm" {{
  load_balancer {{
    strategy = "{strategy}"
    servers  = [{servers}]{options}
  }}
}}
"""


def start_gateway(args: argparse.Namespace, strategy: str, work: Path) -> subprocess.Popen[bytes]:
    config = work / f"prefixcache-{strategy}.hcl"
    config.write_text(gateway_config(args, strategy))
    cmd = [
        str(ROOT / ".venv" / "bin" / "a3s-gateway"),
        "run",
        "--config",
        str(config),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    wait_tcp(args.port_base)
    return proc


# --------------------------------------------------------------------------- the workload


def system_prompts(count: int, rng: random.Random) -> list[str]:
    prompts = []
    for n in range(count):
        words = " ".join(rng.choice(_WORDS) for _ in range(500))
        prompts.append(f"You are agent {n}. Follow these instructions and use these tools: {words}")
    return prompts


@dataclass
class Totals:
    ttft: list[float] = field(default_factory=list)
    cached: int = 0
    blocks: int = 0


async def conversation(
    client: httpx.AsyncClient, system: str, turns: int, rng: random.Random, totals: Totals
) -> None:
    messages = [{"role": "system", "content": system}]
    for turn in range(turns):
        question = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(10, 40)))
        messages.append({"role": "user", "content": f"turn {turn}: {question}"})
        body = {"model": "demo", "stream": True, "messages": messages}
        sent = time.perf_counter()
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            chunks = response.aiter_raw()
            await chunks.__anext__()
            totals.ttft.append(time.perf_counter() - sent)
            reply = b"".join([chunk async for chunk in chunks])
        cached, _, blocks = response.headers["x-demo-prefix-cache"].partition("/")
        totals.cached += int(cached)
        totals.blocks += int(blocks)
        messages.append({"role": "assistant", "content": f"reply of {len(reply)} bytes"})


async def workload(args: argparse.Namespace, seed: int) -> Totals:
    rng = random.Random(seed)
    prompts = system_prompts(args.systems, rng)
    plan = [(rng.choice(prompts), random.Random(seed * 1000 + i)) for i in range(args.conversations)]
    totals = Totals()
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{args.port_base}", limits=limits, timeout=60, trust_env=False
    ) as client:
        gate = asyncio.Semaphore(args.concurrency)

        async def one(system: str, conv_rng: random.Random) -> None:
            async with gate:
                await conversation(client, system, args.turns, conv_rng, totals)

        await asyncio.gather(*(one(system, conv_rng) for system, conv_rng in plan))
    return totals


def measure(args: argparse.Namespace, strategy: str, seed: int, work: Path) -> tuple[float, float, float]:
    """(hit rate, p50 TTFT ms, p90 TTFT ms) of one run on fresh replicas."""
    replicas = start_replicas(args)
    try:
        gateway = start_gateway(args, strategy, work)
        try:
            totals = asyncio.run(workload(args, seed))
        finally:
            stop(gateway)
    finally:
        for proc in replicas:
            stop(proc)
    ttft = sorted(totals.ttft)
    p50 = ttft[len(ttft) // 2] * 1000
    p90 = ttft[int(len(ttft) * 0.9)] * 1000
    return totals.cached / max(totals.blocks, 1), p50, p90


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--replicas", type=int, default=4)
    ap.add_argument("--conversations", type=int, default=48)
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--systems", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=12)
    ap.add_argument("--cache-blocks", type=int, default=256)
    ap.add_argument("--prefill-delay", type=float, default=0.002)
    ap.add_argument("--load-factor", type=float, default=1.25, help="prefix-cache's load_factor")
    ap.add_argument("--port-base", type=int, default=9900)
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".work")
    ap.add_argument("--serve-demo", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_demo is not None:
        serve_demo(args.serve_demo, args.cache_blocks, args.prefill_delay)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[tuple[float, float, float]]] = {s: [] for s in STRATEGIES}
    for round_ in range(args.rounds):
        order = STRATEGIES[round_ % 3 :] + STRATEGIES[: round_ % 3]
        for strategy in order:
            results[strategy].append(measure(args, strategy, seed=round_, work=args.work))
            print(f"round {round_ + 1} {strategy}: {results[strategy][-1]}", file=sys.stderr, flush=True)
    print(
        f"{args.replicas} replicas (cache {args.cache_blocks} blocks of 64 bytes, prefill "
        f"{args.prefill_delay * 1000:g} ms per uncached block), {args.conversations} conversations x "
        f"{args.turns} turns on {args.systems} system prompts, {args.concurrency} at once; "
        f"median over {args.rounds} rounds (min-max)\n"
    )
    print("| strategy | prefix cache hit rate | p50 time to first token (ms) | p90 (ms) |")
    print("|---|---|---|---|")
    for strategy, runs in results.items():
        hits, p50s, p90s = zip(*runs, strict=True)
        print(
            f"| {strategy} | {statistics.median(hits):.1%} ({min(hits):.1%}-{max(hits):.1%}) "
            f"| {statistics.median(p50s):.1f} ({min(p50s):.1f}-{max(p50s):.1f}) "
            f"| {statistics.median(p90s):.1f} ({min(p90s):.1f}-{max(p90s):.1f}) |"
        )


if __name__ == "__main__":
    main()
