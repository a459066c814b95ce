"""A worker imports what its configuration uses, not every library a kind could need.

Each process of `a3s-gateway run --workers 2` (the supervisor and both workers) is started with
a `sitecustomize` module on PYTHONPATH that writes `sys.modules` to a file when the process exits
(a worker drains and exits normally on SIGTERM). A minimal configuration leaves cryptography
(~10 MiB resident), pyjwt and httpx unimported in the workers, and lark and python-hcl2 too
(its HCL and its rules are read by the compiler's fast paths); a configuration with a jwt
middleware or an active health check still loads what those kinds need, and a rule outside the
fast path loads lark.

The workers do not compile either: the supervisor does and hands them the graph (runtime/handoff.py),
so the compiler's pipeline (the HCL reader, the merge, the lowering, the checks) is imported by
the supervisor only, with dynamic providers too (the supervisor runs them:
tests/test_supervisor_providers.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
from pathlib import Path

import psutil
import pytest

from .stubs import free_port
from .test_cli_run import GATEWAY, _listens, config, wait_for

# Imported by the process's interpreter at start-up (site.py), in the supervisor and the workers.
SITECUSTOMIZE = """
import atexit, os, sys

def _dump_modules():
    path = os.path.join(os.environ["A3S_TEST_MODULES_DIR"], f"{os.getpid()}.txt")
    with open(path, "w") as fh:
        fh.write("\\n".join(sorted(sys.modules)))

atexit.register(_dump_modules)
"""

HEAVY = ("cryptography", "jwt", "httpx")
# The HCL and rule parsers' library: a configuration in the literal subset of HCL whose rules are
# matcher chains is read without it (compiler/_hcl_fast.py, compiler/rules/_fast.py).
PARSERS = ("lark", "hcl2")
# Imported when the graph has a node that uses them, never by an idle worker of a configuration
# without one (issue 17's idle memory): prometheus-client and its exposition's http.server and
# wsgiref (some 3 MiB) only with a `metrics` block; difflib only for a diagnostic's "did you mean";
# the admin API's and the dashboard's modules only when a router serves them; the middleware
# declarations (and the channels' they pull in) only for a configuration with a middleware; the
# scalers and revisions only for a scaled service; the TCP and UDP side only for a graph with one.
LAZY = (
    "prometheus_client",
    "http.server",
    "wsgiref",
    "difflib",
    "a3s_gateway.runtime.admin.endpoints",
    "a3s_gateway.runtime.admin.live",
    "a3s_gateway.runtime.admin.dashboard",
    "a3s_gateway.stdlib.middlewares.schemas",
    "a3s_gateway.stdlib.channels.schemas",
    "a3s_gateway.stdlib.scalers",
    "a3s_gateway.runtime.l4",
)

# The compiler's pipeline: what reads, merges, lowers and checks the files. The rules' parser is
# not among them: the router builds its matchers from the rules' text (runtime/router.py).
COMPILE_ONLY = (
    "a3s_gateway.compiler.pipeline",
    "a3s_gateway.compiler.hcl",
    "a3s_gateway.compiler._hcl_fast",
    "a3s_gateway.compiler._hcl_scan",
    "a3s_gateway.compiler.interpolate",
    "a3s_gateway.compiler.merge",
    "a3s_gateway.compiler.overlay",
    "a3s_gateway.compiler.env_overrides",
    "a3s_gateway.compiler.lower",
    "a3s_gateway.compiler.check",
)

NEGATED_RULE = """
routers "not-admin" {
  rule    = "!PathPrefix(`/admin`) && Host(`example.com`)"
  service = "llm"
}
"""

JWT_MIDDLEWARE = """
routers "secure" {
  rule        = "PathPrefix(`/secure`)"
  service     = "llm"
  middlewares = ["auth"]
}

middlewares "auth" {
  type  = "jwt"
  value = "a-secret-of-at-least-32-bytes-for-hs256"
}
"""

HEALTH_CHECKED = """
services "checked" {
  load_balancer {
    servers = [{ url = "http://127.0.0.1:9" }]
    health_check {
      path     = "/health"
      interval = "30s"
    }
  }
}
"""


def worker_modules(tmp_path: Path, text: str, backend: str) -> list[set[str]]:
    """The modules each of the two workers had imported when it exited, serving `text`."""
    return process_modules(tmp_path, text, backend)[1:]


def process_modules(tmp_path: Path, text: str, backend: str) -> list[set[str]]:
    """The modules the supervisor and then each of the two workers had imported when it exited."""
    port = free_port()
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    dumps = tmp_path / "modules"
    dumps.mkdir()
    path = tmp_path / "gw.hcl"
    path.write_text(config(port) + textwrap.dedent(text))
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "A3S_TEST_MODULES_DIR": str(dumps)}
    command = [*GATEWAY, "run", "--config", str(path), "--workers", "2", "--backend", backend]
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        supervisor = psutil.Process(proc.pid)
        workers = wait_for(lambda: len(supervisor.children()) == 2 and supervisor.children(), what="workers")
        wait_for(lambda: all(_listens(worker, port) for worker in workers), what="both workers to listen")
        pids = [proc.pid, *(worker.pid for worker in workers)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return [set((dumps / f"{pid}.txt").read_text().split()) for pid in pids]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_minimal_worker_does_not_import_what_no_kind_of_it_uses(tmp_path: Path, backend: str) -> None:
    for modules in worker_modules(tmp_path, "", backend):
        assert "a3s_gateway.runtime.gateway" in modules  # the dump is a serving worker's
        assert [name for name in HEAVY if name in modules] == []
        assert [name for name in PARSERS if name in modules] == []
        assert [name for name in LAZY if name in modules] == []


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_only_the_supervisor_imports_the_compilers_pipeline(tmp_path: Path, backend: str) -> None:
    supervisor, *workers = process_modules(tmp_path, JWT_MIDDLEWARE + HEALTH_CHECKED, backend)
    assert set(COMPILE_ONLY) <= supervisor  # it compiled: the names are the pipeline's
    for modules in workers:
        assert "a3s_gateway.runtime.gateway" in modules
        assert [name for name in COMPILE_ONLY if name in modules] == []


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_worker_loads_what_its_kinds_use(tmp_path: Path, backend: str) -> None:
    for modules in worker_modules(tmp_path, JWT_MIDDLEWARE + HEALTH_CHECKED, backend):
        assert {"a3s_gateway.stdlib.middlewares.jwt", "jwt", "cryptography", "httpx"} <= modules


METRICS = """
metrics {
  prometheus {}
}
"""


def test_a_worker_loads_prometheus_client_when_metrics_are_configured(tmp_path: Path) -> None:
    for modules in worker_modules(tmp_path, METRICS, "asyncio"):
        assert {"prometheus_client", "prometheus_client.exposition"} <= modules


def test_a_worker_loads_the_rule_grammar_for_a_rule_outside_the_fast_path(tmp_path: Path) -> None:
    for modules in worker_modules(tmp_path, NEGATED_RULE, "asyncio"):
        assert {"lark", "a3s_gateway.compiler.rules._grammar"} <= modules
        assert "hcl2" not in modules
