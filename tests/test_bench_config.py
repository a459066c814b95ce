"""The benchmark's gateway config (benchmarks/gateway.hcl) compiles, and stays the minimal one.

`make bench` hands the template to the shared harness, which replaces {listen_host},
{listen_port} and {backend_url}; a config that stopped compiling would only show up as a
target that never becomes ready, half an hour into a benchmark run.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from a3s_gateway.compiler import compile_config
from a3s_gateway.compiler.schema import RouterConfig

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
PLACEHOLDERS = {"listen_host": "127.0.0.1", "listen_port": "9100", "backend_url": "http://127.0.0.1:9001"}


def _render(template: str) -> str:
    # The harness replaces `{name}` for known names only; HCL's own braces are left alone.
    for name, value in PLACEHOLDERS.items():
        template = template.replace("{" + name + "}", value)
    return template


def test_benchmark_config_compiles(tmp_path: Path) -> None:
    config = tmp_path / "gateway.hcl"
    config.write_text(_render((BENCH / "gateway.hcl").read_text()))
    result = compile_config([str(config)])
    assert result.graph is not None, result.diagnostics
    graph = result.graph
    routers = graph.by_kind("router")
    assert len(routers) == 1 and len(graph.by_kind("service")) == 1
    assert not graph.by_kind("middleware")
    router = routers[0].config
    assert isinstance(router, RouterConfig) and router.rule == "PathPrefix(`/`)"
    entrypoint = graph.by_kind("entrypoint")[0].config
    assert entrypoint.address == "127.0.0.1:9100"


def test_targets_file_points_at_the_config() -> None:
    targets = tomllib.loads((BENCH / "targets.toml").read_text())["targets"]
    assert {"a3s", "a3s-2w"} <= set(targets)
    for name, target in targets.items():
        if name.startswith("a3s"):  # the gateway's targets run it on the template
            assert (BENCH / target["config"]).exists()
            assert "{config}" in target["cmd"]
    # The floor (benchmarks/floor_relay.py) is a reference row, off by default, and its script
    # is where the command finds it from the project's interpreter.
    floor = targets["python-floor"]
    assert floor["default"] is False
    assert "$(dirname {python})/../../benchmarks/floor_relay.py" in floor["cmd"]
    assert (BENCH / "floor_relay.py").exists()


def test_routing_benchmark_config_compiles(tmp_path: Path) -> None:
    """benchmarks/model-router.hcl (step `routecost`) is gateway.hcl with a model_router in front."""
    config = tmp_path / "model-router.hcl"
    config.write_text(_render((BENCH / "model-router.hcl").read_text()))
    result = compile_config([str(config)])
    assert result.graph is not None, result.diagnostics
    services = {n.name: n.config for n in result.graph.by_kind("service")}
    assert services["llm"].kind == "model_router"
    assert services["backend"].load_balancer.servers[0].url == "http://127.0.0.1:9001"


def test_cache_benchmark_config_compiles_with_the_cache_outside_the_header_middleware(tmp_path: Path) -> None:
    # benchmarks/cache.hcl (run.sh's `cachecost` step): the cache must wrap the middleware that
    # makes responses cacheable, or every request would be a miss and the step would measure nothing.
    config = tmp_path / "cache.hcl"
    config.write_text(_render((BENCH / "cache.hcl").read_text()))
    result = compile_config([str(config)])
    assert result.graph is not None, result.diagnostics
    router = result.graph.by_kind("router")[0].config
    assert isinstance(router, RouterConfig) and list(router.middlewares) == ["cache", "cacheable"]
    types = {node.name: node.attrs.get("type") for node in result.graph.by_kind("middleware")}
    assert types == {"cache": "cache", "cacheable": "headers"}


def test_layer4_benchmark_configs_compile(tmp_path: Path) -> None:
    """The gateway configs of benchmarks/tcprelay.py and udprelay.py (steps `tcprelay`, `udprelay`)."""
    import importlib.util

    for name, protocol in (("tcprelay", "tcp"), ("udprelay", "udp")):
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        config = tmp_path / f"{name}.hcl"
        config.write_text(module.GATEWAY_HCL.format(port=9100, backend=9001))
        result = compile_config([str(config)])
        assert result.graph is not None, result.diagnostics
        assert [e.config.protocol for e in result.graph.by_kind("entrypoint")] == [protocol]
