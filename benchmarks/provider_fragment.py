"""CPU time of a provider's share of a reload: N routers as etcd keys, to a fragment, merged.

    .venv/bin/python benchmarks/provider_fragment.py 10000 5

The keys are what an etcd or Redis provider reads for N routers shaped like routers_hcl.py's
(a rule, a service per hundred routers, one middleware each): 3N + 2 keys. Each round times, in
CPU seconds of this process, `kv_fragment` (keys to a fragment, stdlib/providers/_kv.py),
`merge_fragments` (qualifying names and resolving references, compiler/fragment.py) and the
whole compile of a small file with the fragment; the median and min over the rounds are printed.
The compile itself is the compiler's cost (benchmarks of compile --check); this is the providers'.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

from a3s_gateway.compiler import compile_config
from a3s_gateway.compiler.diagnostics import Diagnostics
from a3s_gateway.compiler.fragment import merge_fragments
from a3s_gateway.compiler.merge import load_config
from a3s_gateway.stdlib.providers._kv import kv_fragment

sys.path.insert(0, os.path.dirname(__file__))
from routers_hcl import router_rule

FILES = """entrypoints "web" {
  address = "127.0.0.1:8080"
}
"""


def keys(count: int) -> list[tuple[bytes, bytes]]:
    out = [
        (b"a3s/http/middlewares/strip/type", b"strip-prefix"),
        (b"a3s/http/middlewares/strip/prefixes/0", b"/x"),
    ]
    for i in range(count):
        base = f"a3s/http/routers/r{i}/"
        out += [
            ((base + "rule").encode(), router_rule(i).encode()),
            ((base + "service").encode(), f"s{i // 100}".encode()),
            ((base + "middlewares/0").encode(), b"strip"),
        ]
    for s in range((count + 99) // 100):
        out.append(
            (
                f"a3s/http/services/s{s}/load_balancer/servers/0/url".encode(),
                f"http://10.0.{s // 250}.{s % 250}:80".encode(),
            )
        )
    return out


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    pairs = keys(count)
    with tempfile.NamedTemporaryFile("w", suffix=".hcl", delete=False) as handle:
        handle.write(FILES)
    times: dict[str, list[float]] = {"kv_fragment": [], "merge_fragments": [], "compile": []}
    for _ in range(rounds):
        start = time.process_time()
        fragment = kv_fragment("etcd", "a3s", pairs)
        built = time.process_time()
        diags = Diagnostics()
        loaded = load_config([handle.name], {}, diags)
        loaded_at = time.process_time()
        merge_fragments(loaded, [fragment], diags)
        merged = time.process_time()
        result = compile_config([handle.name], {}, [fragment])
        done = time.process_time()
        assert result.graph is not None, [d.message for d in result.diagnostics.errors][:3]
        times["kv_fragment"].append(built - start)
        times["merge_fragments"].append(merged - loaded_at)
        times["compile"].append(done - merged)
    os.unlink(handle.name)
    print(f"{count} routers ({len(pairs)} keys), {rounds} rounds, CPU seconds: median (min)")
    for name, values in times.items():
        print(f"  {name:16} {statistics.median(values):.3f} ({min(values):.3f})")


if __name__ == "__main__":
    main()
