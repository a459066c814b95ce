"""diff(a, a) is empty; fingerprints ignore source positions but see every config change."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from a3s_gateway.compiler import compile_config, diff
from a3s_gateway.compiler.merge import load_texts  # noqa: F401 - the in-memory loader exists

names = st.text(alphabet="abcdefghij", min_size=1, max_size=6)


def _config(services: dict[str, int], blank_lines: int) -> dict[str, str]:
    text = 'entrypoints "web" { address = "127.0.0.1:8080" }\n' + "\n" * blank_lines
    for name, port in sorted(services.items()):
        text += (
            f'services "{name}" {{\n  load_balancer {{ servers = [{{ url = "http://127.0.0.1:{port}" }}] }}\n}}\n'
            f'routers "{name}" {{\n  rule = "PathPrefix(`/{name}`)"\n  service = "{name}"\n}}\n'
        )
    return {"gw.hcl": text}


def _graph(files: dict[str, str]):  # type: ignore[no-untyped-def]
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, text in files.items():
            (Path(tmp) / name).write_text(text)
            paths.append(str(Path(tmp) / name))
        result = compile_config(paths, {})
    assert result.graph is not None, list(result.diagnostics)
    return result.graph


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(names, st.integers(1024, 65535), min_size=1, max_size=4), st.integers(0, 5))
def test_diff_of_a_graph_with_itself_is_empty(services: dict[str, int], blank: int) -> None:
    graph = _graph(_config(services, blank))
    assert diff(graph, graph).is_empty
    moved = _graph(_config(services, blank + 3))
    assert diff(graph, moved).is_empty, "moving blocks must not change fingerprints"


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(names, st.integers(1024, 65534), min_size=1, max_size=4), st.data())
def test_changing_one_service_changes_exactly_that_node(
    services: dict[str, int], data: st.DataObject
) -> None:
    victim = data.draw(st.sampled_from(sorted(services)))
    changed = {**services, victim: services[victim] + 1}
    plan = diff(_graph(_config(services, 0)), _graph(_config(changed, 0)))
    assert plan.changed == (f"service:{victim}",)
    assert not plan.added and not plan.removed


_ROUTER_BASE = {"rule": "PathPrefix(`/a`)", "service": "s", "priority": None, "middlewares": ()}
_ROUTER_CHANGES = {
    "rule": "PathPrefix(`/b`)",
    "service": "t",
    "priority": 7,
    "middlewares": ("m",),
}


_HEADERS = '"X-A" = "1", "X-B" = "2"'
_HEADERS_REORDERED = '"X-B" = "2", "X-A" = "1"'


def _router_config(router: dict[str, object], headers: str = _HEADERS) -> dict[str, str]:
    """Two services, a headers middleware (a map: `headers`) and routers `r` and `keep`."""
    text = 'entrypoints "web" { address = "127.0.0.1:8080" }\n'
    for name in ("s", "t"):
        text += (
            f'services "{name}" {{\n  load_balancer {{ servers = [{{ url = "http://127.0.0.1:9" }}] }}\n}}\n'
        )
    text += f'middlewares "m" {{\n  type = "headers"\n  request_headers = {{ {headers} }}\n}}\n'
    text += f'routers "r" {{\n  rule = "{router["rule"]}"\n  service = "{router["service"]}"\n'
    if router["priority"] is not None:
        text += f"  priority = {router['priority']}\n"
    middlewares = ", ".join(f'"{m}"' for m in router["middlewares"])  # type: ignore[attr-defined]
    text += f"  middlewares = [{middlewares}]\n}}\n"
    text += 'routers "keep" {\n  rule = "PathPrefix(`/k`)"\n  service = "s"\n  middlewares = ["m"]\n}\n'
    return {"gw.hcl": text}


@settings(max_examples=20, deadline=None)
@given(st.sets(st.sampled_from(sorted(_ROUTER_CHANGES)), min_size=1))
def test_changing_a_router_changes_exactly_that_router(keys: set[str]) -> None:
    """A router's fingerprint is its config's JSON in field order (compiler/ir.py
    node_fingerprint): any change of any key shows, and nothing else moves."""
    changed = {**_ROUTER_BASE, **{k: _ROUTER_CHANGES[k] for k in keys}}
    plan = diff(_graph(_router_config(_ROUTER_BASE)), _graph(_router_config(changed)))
    assert plan.changed == ("router:r",), plan
    assert not plan.added and not plan.removed


def test_a_map_written_in_another_order_changes_nothing() -> None:
    """A config holding a map is fingerprinted in the sorted form: the order its keys are
    written in is no change (the headers middleware keeps its state)."""
    one = _graph(_router_config(_ROUTER_BASE))
    other = _graph(_router_config(_ROUTER_BASE, _HEADERS_REORDERED))
    assert diff(one, other).is_empty
