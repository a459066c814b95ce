"""What the privacy classifier costs per request: CPU time for a 4 KiB prompt (the budget: 50 µs).

    .venv/bin/python benchmarks/privacycost.py [--rounds 7] [--iterations 2000]

In this process, no sockets: the pure cost of `Classifier.classify` (stdlib/privacy/) on an
OpenAI chat completions body whose user message is 4 KiB of prose, with the default detectors
and two keyword/pattern rules, as a `privacy_router` builds it. Cases, interleaved round by
round so that the machine's load falls on all alike:

- `clean`: nothing sensitive (the common case: one JSON parse, one RE2 pass);
- `findings`: an e-mail address, a card number, a phone number and a keyword in the text;
- `redacted`: the same, with every match redacted (the body re-encoded);
- `scan-only`: the RE2 pass alone over the 4 KiB of text;
- `python-re`: for comparison, the same alternation with Python's `re` (backtracking) on the text;
- `json.loads`: the parse of the same body alone, a yardstick to read the others against on a
  loaded machine (every LLM kind pays it).

Each round times `--iterations` calls with `time.process_time` (CPU time of this process); the
median and the minimum over rounds are reported, in microseconds per call.

    .venv/bin/python benchmarks/privacycost.py --instructions [--calls 200]

counts machine instructions instead (valgrind's callgrind), which do not move with the
machine's load: this script runs under callgrind once with every case set up and called once
(the warm-up) and then once per case with `--calls` more calls of that case (a tenth as many
for `python-re`); a case's figure is the difference with the first run divided by its calls,
so the start-up, the imports and the warm-up cancel out. PYTHONHASHSEED=0 keeps dict layouts
the same from run to run (see benchmarks/callgrind.py). About a minute per run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from a3s_gateway.stdlib.privacy import Classifier, Scanner
from a3s_gateway.stdlib.services.schemas.privacy_router import PrivacyRouterConfig

_PROSE = (
    "the quarterly report shows that revenue grew in every region while costs stayed flat and the "
    "team shipped three releases please summarise the main risks for next quarter and list the "
    "customers who asked for the new API in 2025 together with their contract values and owners"
)
_WORDS = _PROSE.split()


def prose(size: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_WORDS)
        words.append(word.capitalize() if rng.random() < 0.05 else word)
        length += len(word) + 1
    return " ".join(words)[:size]


def config() -> PrivacyRouterConfig:
    return PrivacyRouterConfig.model_validate(
        {
            "route": {"public": "hosted", "confidential": "local"},
            "rule": {
                "projects": {"level": "confidential", "keywords": ["Project Nightingale", "Blue Harbor"]},
                "employees": {"level": "internal", "patterns": [r"\bEMP-[0-9]{6}\b"]},
            },
        }
    )


def body(text: str) -> bytes:
    messages = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": text}]
    return json.dumps({"model": "gpt-4o", "messages": messages}).encode()


def per_call(fn: Callable[[], object], iterations: int) -> float:
    start = time.process_time()
    for _ in range(iterations):
        fn()
    return (time.process_time() - start) / iterations * 1e6


def cases() -> dict[str, Callable[[], object]]:
    """Each case's call, set up (and its results checked) once."""
    options = config()
    rules = options.scan_rules()
    scanner = Scanner(rules)
    plain = Classifier(scanner, frozenset())
    redacting = Classifier(scanner, frozenset({"*"}))
    clean_text = prose(4096)
    sensitive = "mail jane.doe@example.com about Project Nightingale, card 4111 1111 1111 1111, call +44 20 7946 0958 "
    dirty_text = (sensitive + clean_text)[:4096]
    clean, dirty = body(clean_text), body(dirty_text)
    backtracking = re.compile("|".join(f"(?:{rule.pattern})" for rule in rules if "(?i:" not in rule.pattern))
    dirty_bytes = dirty_text.encode()
    assert plain.classify(clean)[0].rules == ()
    assert set(plain.classify(dirty)[0].rules) == {"card", "email", "phone", "projects"}
    return {
        "clean": lambda: plain.classify(clean),
        "findings": lambda: plain.classify(dirty),
        "redacted": lambda: redacting.classify(dirty),
        "scan-only": lambda: scanner.scan(dirty_bytes),
        "python-re": lambda: list(backtracking.finditer(dirty_text)),
        # A yardstick for a loaded machine: the JSON parse every LLM body already costs.
        "json.loads": lambda: json.loads(dirty),
    }


def share(name: str, count: int) -> int:
    """The calls of case `name` out of `count` (python-re is 40 times slower: a tenth)."""
    return count // (10 if name == "python-re" else 1)


def timed(rounds: int, iterations: int) -> None:
    calls = cases()
    results: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            results[name].append(per_call(fn, share(name, iterations)))
    print(f"4 KiB prompt, {rounds} rounds, CPU µs per call")
    for name, times in results.items():
        print(f"  {name:10} median {statistics.median(times):7.1f}   min {min(times):7.1f}")


def run_calls(case: str | None, count: int) -> None:
    """The process measured under callgrind: every case once, then `count` calls of `case`."""
    calls = cases()
    for fn in calls.values():
        fn()
    if case is not None:
        fn = calls[case]
        for _ in range(share(case, count)):
            fn()


def callgrind_total(case: str | None, count: int, work: Path) -> int:
    out = work / f"callgrind-{case or 'base'}.out"
    argv = [sys.executable, __file__, "--run-calls", case or "", "--calls", str(count)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    tool = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    subprocess.run([*tool, *argv], env=env, check=True, stderr=subprocess.DEVNULL)
    for line in out.read_text(errors="replace").splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise SystemExit(f"{out}: no totals")


def counted(count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="privacycost-") as tmp:
        work = Path(tmp)
        base = callgrind_total(None, count, work)
        print(f"4 KiB prompt, instructions per call (callgrind; {count} calls a case)")
        for name in cases():
            total = callgrind_total(name, count, work)
            print(f"  {name:10} {(total - base) / share(name, count):12,.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--instructions", action="store_true", help="count instructions (callgrind)")
    parser.add_argument("--calls", type=int, default=200, help="calls a case under --instructions")
    parser.add_argument("--run-calls", help=argparse.SUPPRESS)  # the process callgrind measures
    args = parser.parse_args()
    if args.run_calls is not None:
        run_calls(args.run_calls or None, args.calls)
    elif args.instructions:
        counted(args.calls)
    else:
        timed(args.rounds, args.iterations)


if __name__ == "__main__":
    main()
