"""Provider fragments merged with the files: `name@provider`, references, limits, snapshots."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from a3s_gateway.compiler import compile_config, compile_loaded, load_files, render_text
from a3s_gateway.compiler.diagnostics import Diagnostics
from a3s_gateway.compiler.fragment import Fragment, provider_of, read_snapshot, write_snapshot

FILES = """
entrypoints "web" { address = "127.0.0.1:0" }
services "llm" {
  load_balancer { servers { url = "http://127.0.0.1:9001" } }
}
routers "files" {
  rule = "PathPrefix(`/files`)"
  service = "llm"
}
"""

ROOT = Path(__file__).parents[2]


def files(tmp_path: Path, text: str = FILES) -> list[str]:
    path = tmp_path / "gateway.hcl"
    path.write_text(text)
    return [str(path)]


def etcd(tree: dict[str, Any], **kw: Any) -> Fragment:
    origins = {
        (section, name): f"key a3s/http/{section}/{name}"
        for section, objects in tree.items()
        for name in objects
    }
    return Fragment("etcd", tree, origins, **kw)


def test_names_are_qualified_and_references_resolve_own_provider_first(tmp_path: Path) -> None:
    fragment = etcd(
        {
            "routers": {
                "api": {"rule": "PathPrefix(`/api`)", "service": "api", "middlewares": ["strip"]},
                "chat": {"rule": "PathPrefix(`/chat`)", "service": "llm"},  # none of etcd's: the files'
                "direct": {"rule": "PathPrefix(`/d`)", "service": "llm@file"},
            },
            "services": {"api": {"load_balancer": {"servers": [{"url": "http://127.0.0.1:9002"}]}}},
            "middlewares": {"strip": {"type": "strip-prefix", "prefixes": ["/api"]}},
        }
    )
    result = compile_config(files(tmp_path), {}, [fragment])
    assert result.graph is not None, render_text(result.diagnostics, result.sources)
    routers = {n.name: n for n in result.graph.nodes if n.kind == "router"}
    assert set(routers) == {"files", "api@etcd", "chat@etcd", "direct@etcd"}
    assert routers["api@etcd"].config.service == "api@etcd"  # type: ignore[attr-defined]
    assert routers["api@etcd"].config.middlewares == ["strip@etcd"]  # type: ignore[attr-defined]
    assert routers["chat@etcd"].config.service == "llm"  # type: ignore[attr-defined]
    assert routers["direct@etcd"].config.service == "llm"  # type: ignore[attr-defined]
    assert {provider_of(n.name) for n in result.graph.nodes if n.kind == "router"} == {"file", "etcd"}


def test_a_file_can_reference_a_provider_name(tmp_path: Path) -> None:
    text = FILES.replace('service = "llm"', 'service = "api@etcd"')
    fragment = etcd({"services": {"api": {"load_balancer": {"servers": [{"url": "http://127.0.0.1:9"}]}}}})
    assert compile_config(files(tmp_path, text), {}, []).graph is None
    assert compile_config(files(tmp_path, text), {}, [fragment]).graph is not None


def test_a_diagnostic_names_the_provider_and_the_key(tmp_path: Path) -> None:
    fragment = Fragment(
        "etcd",
        {"routers": {"bad": {"rule": "Host(", "service": "nope"}}},
        {
            ("routers", "bad"): "key a3s/http/routers/bad",
            ("routers", "bad", "rule"): "key a3s/http/routers/bad/rule",
            ("routers", "bad", "service"): "key a3s/http/routers/bad/service",
        },
    )
    result = compile_config(files(tmp_path), {}, [fragment])
    assert result.graph is None
    text = render_text(result.diagnostics, result.sources)
    assert "etcd: key a3s/http/routers/bad/rule:1:7" in text
    assert '    "Host("\n          ^' in text
    assert "etcd: key a3s/http/routers/bad/service:1:1" in text
    assert "unknown service 'nope'" in text


def test_problems_and_forbidden_sections_are_errors(tmp_path: Path) -> None:
    fragment = Fragment(
        "redis",
        {
            "entrypoints": {"x": {"address": ":1"}},
            "routers": {"a@b": {"rule": "Path(`/`)", "service": "llm"}},
        },
        problems=(("key a3s/http/routers/x/rule", "the value is not UTF-8 text (byte 0)"),),
    )
    result = compile_config(files(tmp_path), {}, [fragment])
    assert result.graph is None
    text = render_text(result.diagnostics, result.sources)
    assert "redis: key a3s/http/routers/x/rule:1:1: error: provider redis: the value is not UTF-8" in text
    assert "cannot set 'entrypoints'" in text
    assert "the name 'a@b' has an '@'" in text


def test_the_router_limit_is_per_provider_and_configurable(tmp_path: Path) -> None:
    routers = {f"r{i}": {"rule": f"Path(`/{i}`)", "service": "llm"} for i in range(3)}
    limited = FILES + "providers {\n  max_routers = 2\n}\n"
    result = compile_config(files(tmp_path, limited), {}, [etcd({"routers": routers})])
    assert result.graph is None
    assert "provider etcd gives 3 routers, more than the 2 allowed" in render_text(result.diagnostics)
    assert compile_config(files(tmp_path), {}, [etcd({"routers": routers})]).graph is not None
    # Set by an environment override (text, as every override's value is): the same limit.
    env = {"GATEWAY_PROVIDERS__MAX_ROUTERS": "2"}
    result = compile_config(files(tmp_path, FILES + "providers {\n}\n"), env, [etcd({"routers": routers})])
    assert "more than the 2 allowed" in render_text(result.diagnostics)


def test_a_provider_name_clashing_with_a_file_name_is_a_duplicate(tmp_path: Path) -> None:
    text = FILES + 'routers "x@etcd" {\n  rule = "Path(`/x`)"\n  service = "llm"\n}\n'
    result = compile_config(
        files(tmp_path, text), {}, [etcd({"routers": {"x": {"rule": "Path(`/y`)", "service": "llm"}}})]
    )
    assert result.graph is None
    assert "'x@etcd' is already defined at" in render_text(result.diagnostics)


def test_snapshots_round_trip(tmp_path: Path) -> None:
    fragment = etcd({"routers": {"x": {"rule": "Path(`/x`)", "service": "llm"}}})
    write_snapshot(str(tmp_path / "snap"), [fragment])
    diags = Diagnostics()
    assert read_snapshot(str(tmp_path / "snap"), diags) == [fragment]
    assert list(diags) == []
    (tmp_path / "snap" / "bad.fragment.json").write_text("{")
    read_snapshot(str(tmp_path / "snap"), diags)
    assert "not a provider fragment" in render_text(diags)


def test_the_default_limit_is_ten_thousand_routers(tmp_path: Path) -> None:
    routers = {f"r{i}": {"rule": f"Path(`/{i}`)", "service": "llm"} for i in range(10_001)}
    result = compile_config(files(tmp_path), {}, [etcd({"routers": routers})])
    assert result.graph is None
    assert "provider etcd gives 10001 routers, more than the 10000 allowed" in render_text(result.diagnostics)


def test_compiling_leaves_the_loaded_files_unchanged() -> None:
    """A gateway compiles each provider update with the files it loaded once (LoadedFiles):
    compiling must not change them, so every example compiled twice from one load, with a
    fragment, is the graph a fresh compile gives, and the loaded tree is what it was."""
    fragment = etcd(
        {
            "routers": {"api": {"rule": "PathPrefix(`/api`)", "service": "api", "middlewares": ["strip"]}},
            "services": {"api": {"load_balancer": {"servers": [{"url": "http://127.0.0.1:9002"}]}}},
            "middlewares": {"strip": {"type": "strip-prefix", "prefixes": ["/api"]}},
        }
    )
    compiled = 0
    for example in sorted(
        [*ROOT.glob("examples/*.hcl"), ROOT / "examples/safe-rollout.d", *ROOT.glob("tests/**/*.hcl")]
    ):
        paths = [str(example)]
        loaded = load_files(paths, {})
        before = copy.deepcopy(loaded.loaded.tree)
        first = compile_loaded(loaded, [fragment])
        if first.graph is None:
            continue  # one that references what it has not got (or an example for another provider)
        compiled += 1
        assert loaded.loaded.tree == before, example
        assert compile_loaded(loaded, [fragment]).graph == first.graph, example
        assert compile_config(paths, {}, [fragment]).graph == first.graph, example
    assert compiled >= 20
