"""Scaled revisions in the compiler: the service's `scaling` as template, each revision's override."""

from __future__ import annotations

from pathlib import Path

from a3s_gateway.compiler import compile_config
from a3s_gateway.compiler.render import to_dot
from a3s_gateway.compiler.schema import ServiceConfig

HEAD = """entrypoints "web" { address = "127.0.0.1:8080" }
routers "r" {
  rule    = "PathPrefix(`/`)"
  service = "llm"
}
"""


def compiled(tmp_path: Path, service: str) -> tuple[ServiceConfig | None, list[str]]:
    path = tmp_path / "gw.hcl"
    path.write_text(HEAD + service)
    result = compile_config([str(path)], {})
    messages = [
        f"{d.span.line}:{d.span.col}: {d.severity}: {d.message}" if d.span else d.message
        for d in result.diagnostics
    ]
    if result.graph is None:
        return None, messages
    node = result.graph.node("service:llm")
    assert node is not None
    config = node.config
    assert isinstance(config, ServiceConfig)
    return config, messages


def test_each_revision_inherits_the_service_block_and_overrides_it_key_by_key(tmp_path: Path) -> None:
    config, messages = compiled(
        tmp_path,
        """services "llm" {
  scaling {
    max_replicas = 4
    executor     = "process"
    process {
      command     = "serve v1 --port {port}"
      health_path = "/ready"
    }
  }
  revisions = [
    { name = "v1", traffic_percent = 100, scaling = {} },
    { name = "v2", traffic_percent = 0,
      scaling = { max_replicas = 1, process = { command = "serve v2 --port {port}" } } },
    { name = "v3", traffic_percent = 0, servers = [{ url = "http://127.0.0.1:9000" }],
      scaling = { executor = "static" } },
  ]
}
""",
    )
    assert messages == []
    assert config is not None
    scaling = {r.name: r.scaling for r in config.revisions}
    assert all(s is not None for s in scaling.values())
    v1, v2, v3 = scaling["v1"], scaling["v2"], scaling["v3"]
    assert v1 is not None and v2 is not None and v3 is not None
    assert (v1.executor, v1.max_replicas, v1.executor_options["command"]) == (
        "process",
        4,
        "serve v1 --port {port}",
    )
    assert (v2.executor, v2.max_replicas, v2.executor_options["command"]) == (
        "process",
        1,
        "serve v2 --port {port}",
    )
    assert v2.executor_options["health_path"] == "/ready"  # the executor block merges key by key
    # Another executor: the service's `process` block is not inherited (it would not fit).
    assert (v3.executor, v3.max_replicas, "command" in v3.executor_options) == ("static", 4, False)


def test_only_one_revision_may_scale(tmp_path: Path) -> None:
    config, messages = compiled(
        tmp_path,
        """services "llm" {
  revisions = [
    { name = "v1", traffic_percent = 100, servers = [{ url = "http://127.0.0.1:9000" }] },
    { name = "v2", traffic_percent = 0,
      scaling = { executor = "process", process = { command = "serve --port {port}" } } },
  ]
}
""",
    )
    assert messages == [] and config is not None
    assert [r.scaling is not None for r in config.revisions] == [False, True]


def test_a_revision_scales_only_when_it_asks_to(tmp_path: Path) -> None:
    # The service's block names one set of replicas (here a webhook): revisions do not inherit
    # it silently, and a block no revision uses is worth a warning.
    config, messages = compiled(
        tmp_path,
        """services "llm" {
  scaling {
    executor = "http"
    http {
      scale_url     = "http://127.0.0.1:7000/scale/llm"
      endpoints_url = "http://127.0.0.1:7000/endpoints/llm"
    }
  }
  revisions = [
    { name = "v1", traffic_percent = 100, servers = [{ url = "http://127.0.0.1:9001" }] },
    { name = "v2", traffic_percent = 0, servers = [{ url = "http://127.0.0.1:9002" }] },
  ]
}
""",
    )
    assert config is not None and [r.scaling for r in config.revisions] == [None, None]
    assert messages == [
        "7:3: warning: service 'llm': no revision scales, so this scaling block is unused; the "
        "revisions' servers take the traffic"
    ]


def test_errors_in_a_revision_scaling_point_into_it(tmp_path: Path) -> None:
    _, messages = compiled(
        tmp_path,
        """services "llm" {
  scaling { executor = "process"; process { command = "serve --port {port}" } }
  revisions = [
    { name = "v1", traffic_percent = 100, scaling = { process = { command = "x", bogus = 1 } } },
    { name = "v2", traffic_percent = 0, scaling = {} },
    { name = "v3", traffic_percent = 0, scaling = { executor = "nope" } },
  ]
}
""",
    )
    assert messages == [
        "9:82: error: unknown key 'bogus' in service 'llm', revision 'v1': executor 'process'",
        "11:53: error: service 'llm', revision 'v3': unknown executor 'nope'",
    ]


def test_a_revision_without_servers_needs_an_executor_that_creates_replicas(tmp_path: Path) -> None:
    _, messages = compiled(
        tmp_path,
        """services "llm" {
  scaling { executor = "process"; process { command = "serve --port {port}" } }
  revisions = [
    { name = "v1", traffic_percent = 100, scaling = {} },
    { name = "v2", traffic_percent = 0, scaling = { executor = "static" } },
  ]
}
""",
    )
    assert messages == ["10:5: error: service 'llm': revision 'v2' has no backends"]


def test_each_scaled_revision_is_a_scaler_node_in_the_graph(tmp_path: Path) -> None:
    path = tmp_path / "gw.hcl"
    path.write_text(
        HEAD
        + """services "llm" {
  revisions = [
    { name = "v1", traffic_percent = 100, servers = [{ url = "http://127.0.0.1:9001" }] },
    { name = "v2", traffic_percent = 0, servers = [{ url = "http://127.0.0.1:9002" }],
      scaling = { executor = "static" } },
  ]
}
"""
    )
    graph = compile_config([str(path)], {}).graph
    assert graph is not None
    scalers = graph.by_kind("scaler")
    assert [(n.id, n.attrs) for n in scalers] == [
        ("scaler:llm/v2", {"service": "llm", "executor": "static", "revision": "v2"})
    ]
    dot = to_dot(graph)
    assert '"service:llm" -> "scaler:llm/v2";' in dot
    assert '"scaler:llm/v2" -> "backend:llm:http://127.0.0.1:9002" [label="v2"];' in dot
    assert '"service:llm" -> "backend:llm:http://127.0.0.1:9001" [label="v1"];' in dot


def test_an_error_in_the_service_block_is_reported_once_not_per_revision(tmp_path: Path) -> None:
    _, messages = compiled(
        tmp_path,
        """services "llm" {
  scaling {
    executor     = "process"
    min_replicas = -1
    process {
      command = "serve --port {port}"
      bogus   = 1
    }
  }
  revisions = [
    { name = "v1", traffic_percent = 100, scaling = {} },
    { name = "v2", traffic_percent = 0, scaling = { max_replicas = 2 } },
  ]
}
""",
    )
    assert messages == [
        "9:5: error: service 'llm': scaling.min_replicas: Input should be greater than or equal to 0",
        "12:7: error: unknown key 'bogus' in service 'llm': executor 'process'",
    ]
