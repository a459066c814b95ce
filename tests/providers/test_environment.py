"""Environment overrides (`GATEWAY_SERVICES__LLM__LOAD_BALANCER__STRATEGY=p2c`), `--env NAME`
overlays, `compile --check --explain-env`, `--provider-snapshot DIR` for compile and graph, and
`providers dump` from a real etcd: all through the real `a3s-gateway` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from a3s_gateway.compiler import compile_config, render_text

from ..compiler.test_cli import _exe
from ..stubs import free_port
from ..test_cli_run import Running, status, wait_for
from .kv_servers import EtcdServer

GATEWAY = """entrypoints "web" {
  address = "127.0.0.1:8080"
}
services "llm" {
  load_balancer {
    servers { url = "demo://llm" }
  }
}
routers "my-api" {
  rule    = "PathPrefix(`/v1`)"
  service = "llm"
}
"""


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run(
        [_exe(), *args],
        capture_output=True,
        text=True,
        env={**clean, "NO_COLOR": "1", **(env or {})},
        timeout=120,
    )


def write(tmp_path: Path, text: str = GATEWAY, name: str = "gateway.hcl") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_an_override_sets_the_key_and_explain_env_says_so(tmp_path: Path) -> None:
    path = write(tmp_path)
    env = {
        "GATEWAY_SERVICES__LLM__LOAD_BALANCER__STRATEGY": "p2c",
        "GATEWAY_ROUTERS__MY_API__PRIORITY": "7",
        "GATEWAY_LOG_LEVEL": "debug",
        "GATEWAY_API_KEYS": "k1,k2",  # no double underscore, no such setting: left to ${...}
    }
    result = compile_config([str(path)], env)
    assert result.graph is not None, render_text(result.diagnostics, result.sources)
    service = result.graph.node("service:llm")
    assert service is not None and service.config.load_balancer.strategy == "p2c"  # type: ignore[attr-defined]
    router = result.graph.node("router:my-api")
    assert router is not None and router.config.priority == 7  # type: ignore[attr-defined]
    assert result.graph.settings.log_level == "debug"  # type: ignore[union-attr]
    shown = cli("compile", "--check", "--explain-env", str(path), env=env)
    assert shown.returncode == 0, shown.stderr
    assert (
        'GATEWAY_SERVICES__LLM__LOAD_BALANCER__STRATEGY -> services.llm.load_balancer.strategy = "p2c" (was unset)'
        in shown.stdout
    )
    assert 'GATEWAY_ROUTERS__MY_API__PRIORITY -> routers.my-api.priority = "7" (was unset)' in shown.stdout
    assert "API_KEYS" not in shown.stdout
    # With a snapshot that cannot be read, the overrides are still explained beside its error.
    missing = str(tmp_path / "no-snapshot")
    shown = cli("compile", "--check", "--explain-env", "--provider-snapshot", missing, str(path), env=env)
    assert shown.returncode == 1 and "cannot read the provider snapshot" in shown.stderr
    assert "GATEWAY_ROUTERS__MY_API__PRIORITY -> routers.my-api.priority" in shown.stdout


def test_an_unknown_key_is_an_error_with_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path)
    cases = {
        "GATEWAY_SERVICES__LLM__LOAD_BALANCER__STRATEGYY": "did you mean 'strategy'?",
        "GATEWAY_SERVICES__LLMM__LOAD_BALANCER__STRATEGY": "there is no service 'llmm' to override",
        "GATEWAY_SERVIZES__LLM__X": "did you mean 'services'?",
        "GATEWAY_ROUTERS__MY_API__RULE__X": "'routers.my-api.rule' is a value, it has no keys",
        "GATEWAY_SERVICES__LLM__LOAD_BALANCER": "is a block; set one of its keys",
        # Validated, it would say a directory that is never read: an error instead.
        "GATEWAY_PROVIDERS__FILE__DIRECTORY": "the file provider's files are read with the configuration files",
    }
    for variable, expected in cases.items():
        shown = cli("compile", "--check", str(path), env={variable: "p2c"})
        assert shown.returncode == 1, variable
        assert f"env {variable}:1:1: error:" in shown.stderr, shown.stderr
        assert expected in shown.stderr, shown.stderr
        assert "Traceback" not in shown.stderr
    bad_value = cli("compile", "--check", str(path), env={"GATEWAY_ROUTERS__MY_API__PRIORITY": "high"})
    assert bad_value.returncode == 1 and "env GATEWAY_ROUTERS__MY_API__PRIORITY:1:1" in bad_value.stderr


def test_env_production_lays_the_overlay_file_over_the_base(tmp_path: Path) -> None:
    path = write(tmp_path)
    write(
        tmp_path,
        'entrypoints "web" {\n  address = "127.0.0.1:9999"\n}\nlog_level = "warning"\n',
        "gateway.production.hcl",
    )
    emitted = cli("compile", "--emit", "ir", "--env", "production", str(path))
    assert emitted.returncode == 0, emitted.stderr
    ir = json.loads(emitted.stdout)
    entrypoint = next(n for n in ir["nodes"] if n["id"] == "entrypoint:web")
    assert entrypoint["config"]["address"] == "127.0.0.1:9999"
    assert ir["settings"]["log_level"] == "warning"
    via_variable = cli("compile", "--emit", "ir", str(path), env={"GATEWAY_ENV": "production"})
    assert json.loads(via_variable.stdout) == ir
    plain = json.loads(cli("compile", "--emit", "ir", str(path)).stdout)
    assert (
        next(n for n in plain["nodes"] if n["id"] == "entrypoint:web")["config"]["address"]
        == "127.0.0.1:8080"
    )
    missing = cli("compile", "--check", "--env", "prod", str(path))
    assert (
        missing.returncode == 1
        and "environment 'prod' (GATEWAY_ENV or --env) has no overlay file" in missing.stderr
    )
    # A mistake in the overlay points into the overlay file.
    write(tmp_path, 'log_level = "loud"\n', "gateway.staging.hcl")
    wrong = cli("compile", "--check", "--env", "staging", str(path))
    assert wrong.returncode == 1 and "gateway.staging.hcl:1:" in wrong.stderr


def test_a_snapshot_from_a_live_etcd_checks_and_draws_what_the_providers_give(
    tmp_path: Path, etcd: EtcdServer
) -> None:
    etcd.put("a3s/http/routers/api/rule", "PathPrefix(`/api`)")
    etcd.put("a3s/http/routers/api/service", "llm")
    host = etcd.url.removeprefix("http://")
    text = GATEWAY.replace('service = "llm"', 'service = "api-svc@etcd"') + (
        f'providers {{\n  etcd {{\n    endpoints = ["{host}"]\n  }}\n}}\n'
    )
    path = write(tmp_path, text)
    etcd.put("a3s/http/services/api-svc/load_balancer/servers/0/url", "demo://x")
    # Without the providers' fragments a file's reference to one is unknown...
    alone = cli("compile", "--check", str(path))
    assert alone.returncode == 1 and "unknown service 'api-svc@etcd'" in alone.stderr
    # ... with a snapshot dumped from the live etcd it compiles, and the graph says where each node is from.
    dumped = cli("providers", "dump", "--config", str(path), "--out", str(tmp_path / "snap"))
    assert dumped.returncode == 0, dumped.stderr
    assert (tmp_path / "snap" / "etcd.fragment.json").is_file()
    checked = cli("compile", "--check", "--provider-snapshot", str(tmp_path / "snap"), str(path))
    assert checked.returncode == 0, checked.stderr
    dot = cli("graph", "--dot", "--provider-snapshot", str(tmp_path / "snap"), str(path))
    assert dot.returncode == 0, dot.stderr
    assert '"router:api@etcd" [label="router: api@etcd\\nPathPrefix(`/api`)\\npriority' in dot.stdout
    assert "\\nfrom etcd" in dot.stdout and "\\nfrom file" in dot.stdout
    # A bad value in the source is a diagnostic naming the key, in CI as at run time.
    etcd.put("a3s/http/routers/api/rule", b"\xff")
    cli("providers", "dump", "--config", str(path), "--out", str(tmp_path / "snap"))
    bad = cli("compile", "--check", "--provider-snapshot", str(tmp_path / "snap"), str(path))
    assert bad.returncode == 1 and "etcd: key a3s/http/routers/api/rule:1:1" in bad.stderr
    # A source that cannot be reached: said, with no traceback.
    etcd.stop()
    down = cli("providers", "dump", "--config", str(path), "--out", str(tmp_path / "snap2"), "--timeout", "5")
    assert down.returncode == 1 and "provider etcd:" in down.stderr and "Traceback" not in down.stderr


def test_the_environments_example_compiles_for_each_environment() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "environments" / "gateway.hcl"
    development = compile_config([str(example)], {})
    production = compile_config([str(example)], {"GATEWAY_ENV": "production"})
    assert development.graph is not None and production.graph is not None
    assert development.graph.settings.log_level == "debug"  # type: ignore[union-attr]
    assert production.graph.settings.log_level == "warning"  # type: ignore[union-attr]
    service = production.graph.node("service:llm")
    assert service is not None and service.config.load_balancer.strategy == "p2c"  # type: ignore[attr-defined]
    assert len(service.config.load_balancer.servers) == 2  # type: ignore[attr-defined]


def test_run_env_watches_the_overlay_file_too(tmp_path: Path, run_gateway: Callable[..., Running]) -> None:
    port = free_port()
    path = write(tmp_path, GATEWAY.replace("127.0.0.1:8080", f"127.0.0.1:{port}"))
    overlay = write(tmp_path, 'log_level = "info"\n', "gateway.production.hcl")
    gateway = run_gateway("--config", str(path), "--env", "production", "--watch")
    wait_for(lambda: status(port, "/v1/models") == 200, what="the gateway to serve")
    wait_for(lambda: gateway.logged("watching"), what="the watcher")
    assert status(port, "/health") == 404
    overlay.write_text(
        'log_level = "warning"\nrouters "health" {\n  rule    = "Path(`/health`)"\n  service = "llm"\n}\n'
    )
    wait_for(lambda: status(port, "/health") == 200, what="the reload after the overlay changed")
    gateway.proc.send_signal(signal.SIGTERM)
    assert gateway.proc.wait(timeout=20) == 0


def test_every_top_level_key_of_the_schema_can_be_overridden(tmp_path: Path) -> None:
    """The keys an override may start with are the schema's (ACME's `certificate_resolvers`
    included), and a labelled one of them still names an existing block."""
    resolver = """certificate_resolvers "le" {
  acme {
    email          = "a@example.com"
    storage        = "acme.json"
    http_challenge { entrypoint = "web" }
  }
}
"""
    path = write(tmp_path, GATEWAY + resolver)
    env = {"GATEWAY_CERTIFICATE_RESOLVERS__LE__ACME__EMAIL": "ops@example.com", "GATEWAY_DRAIN_TIMEOUT": "3s"}
    result = compile_config([str(path)], env)
    assert result.graph is not None, render_text(result.diagnostics, result.sources)
    assert {o.variable: o.value for o in result.overrides} == env
    settings = result.graph.settings
    assert settings.certificate_resolvers["le"].acme.email == "ops@example.com"  # type: ignore[attr-defined]
    missing = compile_config([str(path)], {"GATEWAY_CERTIFICATE_RESOLVERS__LETS__ACME__EMAIL": "x"})
    assert "there is no certificate resolver 'lets' to override" in render_text(
        missing.diagnostics, missing.sources
    )
