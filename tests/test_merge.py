"""Loading several files and directories into one tree; duplicates name both places."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from a3s_gateway.compiler.diagnostics import Diagnostics
from a3s_gateway.compiler.merge import LoadedConfig, SpanMap, load_config


def write(directory: Path, name: str, text: str) -> str:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def load(paths: list[str], env: dict[str, str] | None = None) -> tuple[LoadedConfig, Diagnostics]:
    diags = Diagnostics()
    return load_config(paths, env or {}, diags), diags


def messages(diags: Diagnostics, base: Path) -> list[str]:
    """`file:line:col: message` with paths relative to `base`, in sorted order."""
    prefix = str(base) + os.sep
    out = []
    for d in diags:
        where = f"{d.span}: ".replace(prefix, "") if d.span else ""
        out.append(f"{d.severity}: {where}{d.message}".replace(prefix, ""))
    return out


def test_files_merge_in_order(tmp_path: Path) -> None:
    a = write(tmp_path, "a.hcl", 'services "api" { x = 1 }')
    b = write(tmp_path, "b.hcl", 'services "web" { x = 2 }\nrouters "r" { service = "api" }')
    config, diags = load([a, b])
    assert list(diags) == []
    assert config.tree == {
        "services": {"api": {"x": 1}, "web": {"x": 2}},
        "routers": {"r": {"service": "api"}},
    }
    assert list(config.tree["services"]) == ["api", "web"]
    assert set(config.sources) == {a, b}
    assert config.sources[a].line(1) == 'services "api" { x = 1 }'


def test_a_name_defined_in_two_files_names_both_places(tmp_path: Path) -> None:
    a = write(tmp_path, "a.hcl", '\n\nservices "api" { x = 1 }')
    b = write(tmp_path, "b.hcl", 'routers "r" {}\n  services "api" { x = 2 }')
    config, diags = load([a, b])
    assert messages(diags, tmp_path) == ["error: b.hcl:2:3: service 'api' is already defined at a.hcl:3:1"]
    assert config.tree["services"]["api"] == {"x": 1}  # the first definition wins


@pytest.mark.parametrize(
    ("block", "noun"),
    [
        ("entrypoints", "entrypoint"),
        ("routers", "router"),
        ("tcp_routers", "TCP router"),
        ("udp_routers", "UDP router"),
        ("middlewares", "middleware"),
    ],
)
def test_duplicate_messages_use_the_kind_of_block(tmp_path: Path, block: str, noun: str) -> None:
    a = write(tmp_path, "a.hcl", f'{block} "x" {{}}')
    b = write(tmp_path, "b.hcl", f'{block} "x" {{}}')
    _, diags = load([a, b])
    assert messages(diags, tmp_path) == [f"error: b.hcl:1:1: {noun} 'x' is already defined at a.hcl:1:1"]


def test_providers_merge_across_files(tmp_path: Path) -> None:
    a = write(tmp_path, "a.hcl", "providers {\n  file { watch = true }\n}")
    b = write(tmp_path, "b.hcl", 'providers { dns { domain = "x" } }')
    config, diags = load([a, b])
    assert list(diags) == []
    assert config.tree == {"providers": {"file": {"watch": True}, "dns": {"domain": "x"}}}
    assert str(config.spans.find(("providers", "dns", "domain"))).endswith("b.hcl:1:19")
    assert str(config.spans.find(("providers", "file"))).endswith("a.hcl:2:3")


def test_conflicting_provider_keys_name_both_places(tmp_path: Path) -> None:
    a = write(tmp_path, "a.hcl", "providers {\n  file { watch = true }\n}")
    b = write(tmp_path, "b.hcl", "providers {\n  file { watch = false }\n}")
    config, diags = load([a, b])
    assert messages(diags, tmp_path) == ["error: b.hcl:2:3: 'file' is already defined at a.hcl:2:3"]
    assert config.tree == {"providers": {"file": {"watch": True}}}


def test_a_top_level_attribute_set_in_two_files(tmp_path: Path) -> None:
    a = write(tmp_path, "a.hcl", "shutdown_timeout_secs = 30")
    b = write(tmp_path, "b.hcl", "shutdown_timeout_secs = 10")
    _, diags = load([a, b])
    assert messages(diags, tmp_path) == [
        "error: b.hcl:1:1: 'shutdown_timeout_secs' is already defined at a.hcl:1:1"
    ]


def test_labelled_and_unlabelled_forms_of_one_block_clash(tmp_path: Path) -> None:
    a = write(tmp_path, "a.hcl", "services {}")
    b = write(tmp_path, "b.hcl", 'services "x" {}')
    _, diags = load([a, b])
    assert messages(diags, tmp_path) == ["error: b.hcl:1:1: 'services' is already defined at a.hcl:1:1"]


def test_attribute_and_block_of_one_name_clash(tmp_path: Path) -> None:
    a = write(tmp_path, "a.hcl", 's "x" {\n  servers = [{ url = "a" }]\n  servers { url = "b" }\n}')
    _, diags = load([a])
    assert messages(diags, tmp_path) == ["error: a.hcl:3:3: 'servers' is already defined at a.hcl:2:3"]


def test_a_directory_is_its_hcl_files_in_name_order(tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    conf.mkdir()
    (conf / "nested").mkdir()
    write(conf / "nested", "skipped.hcl", 'services "deep" {}')
    write(conf, "20-b.hcl", 'services "b" {}')
    write(conf, "10-a.hcl", 'services "a" {}')
    write(conf, "notes.txt", "not hcl")
    write(conf, ".hidden.hcl", 'services "hidden" {}')
    config, diags = load([str(conf)])
    assert list(diags) == []
    assert list(config.tree["services"]) == ["a", "b"]
    assert [os.path.basename(p) for p in config.sources] == ["10-a.hcl", "20-b.hcl"]


def test_a_file_named_twice_is_read_once(tmp_path: Path) -> None:
    a = write(tmp_path, "a.hcl", 'services "api" {}')
    config, diags = load([a, str(tmp_path), a])
    assert list(diags) == []
    assert list(config.sources) == [a]


def test_an_empty_directory_is_a_warning(tmp_path: Path) -> None:
    _, diags = load([str(tmp_path)])
    assert not diags.has_errors
    assert [w.message for w in diags.warnings] == [f"directory {tmp_path} holds no *.hcl files"]


def test_missing_file_is_a_diagnostic_not_an_exception(tmp_path: Path) -> None:
    good = write(tmp_path, "good.hcl", 'services "s" {}')
    missing = str(tmp_path / "missing.hcl")
    config, diags = load([missing, good])
    assert [d.message for d in diags.errors] == [f"cannot read {missing}: No such file or directory"]
    assert config.tree == {"services": {"s": {}}}


def test_invalid_utf8_is_reported_at_its_position(tmp_path: Path) -> None:
    path = tmp_path / "bad.hcl"
    path.write_bytes(b'a = "\xc3\xa9"\nb = "\xff"\n')  # a valid "é" on line 1, a stray byte on line 2
    _, diags = load([str(path)])
    assert messages(diags, tmp_path) == ["error: bad.hcl:2:6: the file is not valid UTF-8"]


def test_syntax_errors_in_every_file_are_reported(tmp_path: Path) -> None:
    a = write(tmp_path, "a.hcl", "a {\n  rate 60\n}")
    b = write(tmp_path, "b.hcl", 'ok "x" {}')
    c = write(tmp_path, "c.hcl", "x = [1,\n")
    config, diags = load([a, b, c])
    assert messages(diags, tmp_path) == [
        "error: a.hcl:2:8: syntax error: unexpected '60'; expected '=' or '{'",
        "error: c.hcl:2:1: syntax error: unexpected end of file; expected a value or ']'",
    ]
    assert config.tree == {"ok": {"x": {}}}
    assert set(config.sources) == {a, b, c}


def test_env_is_passed_to_every_file(tmp_path: Path) -> None:
    a = write(tmp_path, "a.hcl", 'x = "${A}"')
    b = write(tmp_path, "b.hcl", 'y = "${B:-dflt}"')
    config, _ = load([a, b], {"A": "1"})
    assert config.tree == {"x": "1", "y": "dflt"}


def test_span_map_prefix_lookup() -> None:
    from a3s_gateway.compiler.source import Span

    spans = SpanMap({("a",): Span("f", 1, 1), ("a", "b"): Span("f", 2, 3)}, {("a", "b"): Span("f", 2, 7)})
    assert spans.find(("a", "b", 0, "c")) == Span("f", 2, 3)
    assert spans.find(["a", "x"]) == Span("f", 1, 1)
    assert spans.value_span(("a", "b")) == Span("f", 2, 7)
    assert spans.value_span(("a", "z")) == Span("f", 1, 1)
    assert spans.find(()) is None
    assert ("a", "b") in spans and len(spans) == 2
