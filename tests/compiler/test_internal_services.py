"""Internal services and the `api` block in the compiler: nodes, errors at their line, DOT, route."""

from __future__ import annotations

from pathlib import Path

import pytest

from a3s_gateway.compiler import compile_config
from a3s_gateway.compiler.render import to_dot
from a3s_gateway.compiler.route import HttpProbe, describe, route_http

BASE = (
    'entrypoints "web" { address = "127.0.0.1:8080" }\n'
    'services "llm" { load_balancer { servers = [{ url = "http://127.0.0.1:9" }] } }\n'
    'routers "all" {\n  rule = "PathPrefix(`/`)"\n  service = "llm"\n}\n'
)
API = 'api {\n  address = "127.0.0.1:9090"\n}\n'


def _errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "gw.hcl"
    path.write_text(text)
    result = compile_config([str(path)])
    return [
        f"{d.span.line}:{d.span.col}: {d.message}" if d.span else d.message
        for d in result.diagnostics
        if d.severity == "error"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            BASE + 'routers "m" {\n  rule = "Path(`/metrics`)"\n  service = "prometheus@internal"\n}\n',
            "9:3: router 'm': prometheus@internal needs metrics to be configured",
            id="prometheus-without-metrics",
        ),
        pytest.param(
            BASE + 'routers "x" {\n  rule = "Path(`/x`)"\n  service = "pong@internal"\n}\n',
            "9:3: router 'x' uses unknown internal service 'pong@internal'",
            id="unknown-internal",
        ),
        pytest.param(
            BASE + "metrics {\n  prometheus {\n    buckets = [1, 0.5]\n  }\n}\n",
            "9:5: settings: metrics.prometheus.buckets: bucket bounds must be positive and strictly increasing",
            id="metrics-buckets",
        ),
        pytest.param(
            BASE + 'api {\n  address = "9090"\n}\n',
            "8:3: api: address: address must be host:port",
            id="api-address",
        ),
        pytest.param(
            BASE + 'api {\n  address = "127.0.0.1:9090"\n  middlewares = ["nope"]\n}\n',
            "9:18: router 'api@internal' uses unknown middleware 'nope'",
            id="api-unknown-middleware",
        ),
        pytest.param(
            BASE + 'services "api@internal" { load_balancer { servers = [{ url = "http://x" }] } }\n',
            "7:1: service 'api@internal': names ending in @internal are the gateway's own services",
            id="reserved-service-name",
        ),
        pytest.param(
            BASE + 'entrypoints "api" { address = "127.0.0.1:7000" }\n' + API,
            "7:1: entrypoint 'api' is declared by the api block",
            id="api-entrypoint-taken",
        ),
        pytest.param(
            BASE + 'api {\n  address = "127.0.0.1:8080"\n}\n',
            "1:21: entrypoint 'web' listens on 127.0.0.1:8080, which entrypoint 'api' already uses",
            id="api-address-taken",
        ),
    ],
)
def test_errors_point_at_their_line(tmp_path: Path, text: str, expected: str) -> None:
    errors = _errors(tmp_path, text)
    assert any(e.startswith(expected) for e in errors), errors


def test_the_api_block_lowers_to_an_entrypoint_routers_and_internal_services(tmp_path: Path) -> None:
    path = tmp_path / "gw.hcl"
    path.write_text(
        BASE
        + 'middlewares "auth" {\n  type = "basic-auth"\n  username = "admin"\n  password = "pw"\n}\n'
        + 'api {\n  address = "127.0.0.1:9090"\n  middlewares = ["auth"]\n}\n'
    )
    result = compile_config([str(path)])
    graph = result.graph
    assert graph is not None, list(result.diagnostics)
    ids = {n.id for n in graph.nodes}
    assert {"entrypoint:api", "router:api@internal", "router:ping@internal"} <= ids
    assert {"service:api@internal", "service:ping@internal"} <= ids
    api_router = graph.node("router:api@internal")
    assert api_router is not None and api_router.attrs["entrypoints"] == ["api"]
    assert api_router.config.model_dump()["middlewares"] == ["auth"]
    assert api_router.attrs["priority"] == 2**31 - 2  # Traefik's: never shadowed on that entrypoint
    # A router that names no entrypoint is not attached to the admin one.
    everything = graph.node("router:all")
    assert everything is not None and everything.attrs["entrypoints"] == ["web"]

    dot = to_dot(graph)
    assert '"service:api@internal" [label="service: api@internal\\n(built in)"' in dot
    assert '"router:api@internal" -> "middleware:auth"' in dot
    assert '"middleware:auth" -> "service:api@internal"' in dot

    match = route_http(
        graph, HttpProbe.from_url("GET", "http://x/api/gateway/health", [], "127.0.0.1"), "api"
    )
    assert match is not None
    info = describe(graph, match)
    assert info["router"] == "api@internal" and info["service"] == "api@internal" and info["internal"]
    assert [m["name"] for m in info["middlewares"]] == ["auth"]
    ping = route_http(graph, HttpProbe.from_url("GET", "http://x/ping", [], "127.0.0.1"), "api")
    assert ping is not None and describe(graph, ping)["service"] == "ping@internal"


def test_no_admin_nodes_without_the_block_or_a_router_naming_them(tmp_path: Path) -> None:
    path = tmp_path / "gw.hcl"
    path.write_text(BASE)
    graph = compile_config([str(path)]).graph
    assert graph is not None
    assert not [n for n in graph.nodes if "internal" in n.id or n.id == "entrypoint:api"]


def test_ping_can_be_left_out_of_the_api_block(tmp_path: Path) -> None:
    path = tmp_path / "gw.hcl"
    path.write_text(BASE + 'api {\n  address = "127.0.0.1:9090"\n  ping = false\n}\n')
    graph = compile_config([str(path)]).graph
    assert graph is not None
    assert graph.node("router:ping@internal") is None and graph.node("service:ping@internal") is None


def test_dashboard_true_adds_the_dashboard_router_beside_the_api(tmp_path: Path) -> None:
    path = tmp_path / "gw.hcl"
    path.write_text(BASE + 'api {\n  address = "127.0.0.1:9090"\n  dashboard = true\n}\n')
    graph = compile_config([str(path)]).graph
    assert graph is not None
    router = graph.node("router:dashboard@internal")
    assert router is not None and router.attrs["entrypoints"] == ["api"]
    assert router.attrs["rule"] == "PathPrefix(`/dashboard`)" and router.attrs["priority"] == 2**31 - 2
    assert graph.node("service:dashboard@internal") is not None
    # Its rates come from the metrics: switched on (collection only, no /metrics route).
    metrics = graph.settings.metrics
    assert metrics is not None and metrics.prometheus.manual_routing and metrics.prometheus.add_routers_labels
    assert graph.node("router:prometheus@internal") is None
    match = route_http(graph, HttpProbe.from_url("GET", "http://x/dashboard/", [], "127.0.0.1"), "api")
    assert match is not None and describe(graph, match)["service"] == "dashboard@internal"
    # Without it, no dashboard; and a router of one's own may name it anywhere.
    path.write_text(BASE + API)
    plain = compile_config([str(path)]).graph
    assert plain is not None and plain.node("service:dashboard@internal") is None
    assert plain.settings.metrics is None
    path.write_text(
        BASE + 'routers "ui" {\n  rule = "PathPrefix(`/dashboard`)"\n  service = "dashboard@internal"\n}\n'
    )
    assert _errors(tmp_path, path.read_text()) == []


METRICS = "metrics {\n  prometheus {}\n}\n"


def test_with_metrics_the_api_block_serves_prometheus_internal_at_metrics(tmp_path: Path) -> None:
    path = tmp_path / "gw.hcl"
    path.write_text(
        BASE
        + METRICS
        + 'api {\n  address = "127.0.0.1:9090"\n  middlewares = ["auth"]\n}\n'
        + 'middlewares "auth" {\n  type = "basic-auth"\n  username = "admin"\n  password = "pw"\n}\n'
    )
    result = compile_config([str(path)])
    graph = result.graph
    assert graph is not None, list(result.diagnostics)
    router = graph.node("router:prometheus@internal")
    assert router is not None and router.attrs["entrypoints"] == ["api"]
    assert router.config.model_dump()["middlewares"] == ["auth"]
    assert graph.node("service:prometheus@internal") is not None
    assert '"middleware:auth" -> "service:prometheus@internal"' in to_dot(graph)
    match = route_http(graph, HttpProbe.from_url("GET", "http://x/metrics", [], "127.0.0.1"), "api")
    assert match is not None
    info = describe(graph, match)
    assert info["service"] == "prometheus@internal" and info["internal"]


def test_manual_routing_leaves_prometheus_to_the_routers(tmp_path: Path) -> None:
    path = tmp_path / "gw.hcl"
    path.write_text(BASE + METRICS.replace("{}", "{ manual_routing = true }") + API)
    graph = compile_config([str(path)]).graph
    assert graph is not None
    assert graph.node("router:prometheus@internal") is None
    path.write_text(BASE + API)  # no metrics block: no /metrics router either
    graph = compile_config([str(path)]).graph
    assert graph is not None and graph.node("router:prometheus@internal") is None
