"""`a3s-gateway status` and `a3s-gateway reload` against a running `a3s-gateway run` subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest

from .stubs import free_port, free_ports
from .test_cli_run import wait_for

GATEWAY = str(Path(sys.executable).with_name("a3s-gateway"))
HASH = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()


def config(web: int, admin: int, service: str = "llm") -> str:
    return f"""
entrypoints "web" {{ address = "127.0.0.1:{web}" }}
middlewares "admin-auth" {{
  type  = "basic-auth"
  users = ["admin:{HASH}"]
}}
routers "chat" {{
  rule    = "PathPrefix(`/v1`)"
  service = "{service}"
}}
services "llm" {{ load_balancer {{ servers = [{{ url = "demo://llm" }}] }} }}
services "scaled" {{
  load_balancer {{ servers = [{{ url = "demo://scaled" }}] }}
  scaling {{
    min_replicas = 1
    executor     = "static"
  }}
}}
routers "scaled" {{
  rule    = "PathPrefix(`/scaled`)"
  service = "scaled"
}}
api {{
  address     = "127.0.0.1:{admin}"
  middlewares = ["admin-auth"]
}}
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([GATEWAY, *args], capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture(params=["asyncio", "trio"])
def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    web, admin = free_ports(2)
    path = tmp_path / "gw.hcl"
    path.write_text(config(web, admin))
    proc = subprocess.Popen(
        [GATEWAY, "run", "-c", str(path), "--backend", request.param],
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{admin}"
    try:
        wait_for(lambda: httpx.get(f"{api}/ping", auth=("admin", "pw"), timeout=2).status_code == 200)
        yield path, api
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_status_prints_health_routers_backends_and_scalers(gateway: tuple[Path, str]) -> None:
    _, api = gateway
    done = cli("status", "--api", api, "--user", "admin:pw")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("gateway: ok (state running, generation 1, reloads 0)")
    for title in ("routers", "backends", "scalers"):
        assert f"\n{title}\n" in out
    assert "api@internal" in out and "PathPrefix(`/v1`)" in out and "admin-auth" in out
    assert "NAME" in out and "HEALTH" in out and "scaled" in out
    assert "Traceback" not in done.stderr


def test_status_shows_a_backends_latency_once_it_served(gateway: tuple[Path, str]) -> None:
    path, api = gateway
    web = re.search(r'address = "127.0.0.1:(\d+)"', path.read_text())
    assert web is not None

    def llm_row() -> list[str]:
        done = cli("status", "--api", api, "--user", "admin:pw")
        assert done.returncode == 0, done.stderr
        backends = done.stdout.split("\nbackends\n")[1].split("\n\n")[0].splitlines()
        assert backends[0].split() == [
            "SERVICE",
            "URL",
            "HEALTH",
            "IN",
            "FLIGHT",
            "CONNECTIONS",
            "P50",
            "MS",
            "P99",
            "MS",
        ]
        [row] = [line.split() for line in backends if line.split()[0] == "llm"]
        return row

    assert llm_row()[-2:] == ["-", "-"]  # nothing served yet
    for _ in range(3):
        assert httpx.get(f"http://127.0.0.1:{web[1]}/v1/models", timeout=10).status_code == 200
    p50, p99 = llm_row()[-2:]
    assert 0 <= float(p50) <= float(p99)


def test_status_without_credentials_or_gateway_fails_with_a_message(gateway: tuple[Path, str]) -> None:
    _, api = gateway
    refused = cli("status", "--api", api)
    assert refused.returncode == 2 and "401" in refused.stderr and "Traceback" not in refused.stderr
    nowhere = cli("status", "--api", f"http://127.0.0.1:{free_port()}", "--timeout", "2")
    assert nowhere.returncode == 2 and "cannot reach the admin API" in nowhere.stderr


def test_reload_exits_0_then_1_with_the_diagnostics(gateway: tuple[Path, str]) -> None:
    path, api = gateway
    done = cli("reload", "--api", api, "--user", "admin:pw")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("reloaded: generation 2")

    text = path.read_text()
    path.write_text(text.replace('service = "llm"', 'service = "lm"', 1))
    rejected = cli("reload", "--api", api, "--user", "admin:pw")
    assert rejected.returncode == 1
    line = text.splitlines().index('  service = "llm"') + 1
    assert f"{path}:{line}:3: error: router 'chat' uses unknown service 'lm'\n    hint: did you mean" in (
        rejected.stderr
    )
    assert "Traceback" not in rejected.stderr
    # The old graph keeps serving.
    status = cli("status", "--api", api, "--user", "admin:pw", "--format", "json")
    assert status.returncode == 0 and '"generation": 2' in status.stdout


def test_reload_through_one_worker_reloads_every_worker(tmp_path: Path) -> None:
    """`run --workers 2`: the API's reload lands on one worker, which asks the supervisor to
    reload them all (as SIGHUP to the supervisor does), so every worker serves the new file."""
    web, admin = free_ports(2)
    path = tmp_path / "gw.hcl"
    path.write_text(config(web, admin))
    proc = subprocess.Popen(
        [GATEWAY, "run", "-c", str(path), "--workers", "2"],
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{admin}"

    def served(url: str) -> bool:
        # Each request opens a new connection, which the kernel gives to either worker
        # (SO_REUSEPORT): 40 in a row on one worker is a chance of 2^-39.
        return all(httpx.get(url, timeout=2).status_code == 200 for _ in range(40))

    try:
        wait_for(lambda: served(f"http://127.0.0.1:{web}/v1/models"), what="both workers to serve")
        assert httpx.get(f"http://127.0.0.1:{web}/health", timeout=2).status_code == 404
        path.write_text(
            config(web, admin) + 'routers "new" {\n  rule = "Path(`/health`)"\n  service = "llm"\n}\n'
        )
        done = cli("reload", "--api", api, "--user", "admin:pw")
        assert done.returncode == 0, done.stderr
        wait_for(lambda: served(f"http://127.0.0.1:{web}/health"), what="every worker to reload")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_the_cli_loads_the_admin_client_only_for_status_and_reload() -> None:
    """`compile`, `graph` and `route` start without the runtime (httpx, the admin API, the
    protocol stacks): the CLI module imports them only inside the commands that use them."""
    code = "import sys, a3s_gateway.runtime.cli; print(sorted(m for m in sys.modules if m.startswith('a3s_gateway.runtime.')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['a3s_gateway.runtime.cli']"
