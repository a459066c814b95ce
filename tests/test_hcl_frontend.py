"""The HCL front end: literal values, the `;` extension, `${VAR}`, and exact file:line:col."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from a3s_gateway.compiler.diagnostics import Diagnostics, render_text
from a3s_gateway.compiler.merge import LoadedConfig, load_texts

DOCS = Path(__file__).parent / "data" / "a3s_docs"


def load(text: str, env: Mapping[str, str] | None = None) -> tuple[LoadedConfig, Diagnostics]:
    diags = Diagnostics()
    return load_texts({"t.hcl": text}, env or {}, diags), diags


def tree(text: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    config, diags = load(text, env)
    assert list(diags) == [], render_text(diags, config.sources)
    return config.tree


def errors(text: str, env: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    _, diags = load(text, env)
    return [(str(d.span), d.message) for d in diags.errors]


# -- shapes -----------------------------------------------------------------------------------


def test_labelled_blocks_become_maps() -> None:
    assert tree('services "api" { x = 1 }\nservices "web" {}\nrouters "r" {}') == {
        "services": {"api": {"x": 1}, "web": {}},
        "routers": {"r": {}},
    }


def test_unlabelled_nested_block_is_a_dict_once_and_a_list_when_repeated() -> None:
    text = """
services "api" {
  load_balancer {
    health_check { path = "/h" }
    servers { url = "http://a" }
    servers { url = "http://b" }
  }
}
"""
    assert tree(text)["services"]["api"] == {
        "load_balancer": {
            "health_check": {"path": "/h"},
            "servers": [{"url": "http://a"}, {"url": "http://b"}],
        }
    }


def test_nested_labelled_block() -> None:
    text = 'services "s" {\n  revisions "v1" { weight = 1 }\n  revisions "v2" { weight = 2 }\n}'
    assert tree(text)["services"]["s"]["revisions"] == {"v1": {"weight": 1}, "v2": {"weight": 2}}


def test_top_level_unlabelled_block() -> None:
    assert tree("providers {\n  file { watch = true }\n}") == {"providers": {"file": {"watch": True}}}


def test_unquoted_labels_and_escaped_labels() -> None:
    assert tree('services api {}\nservices "a\\"b" {}') == {"services": {"api": {}, 'a"b': {}}}


# -- literal values ---------------------------------------------------------------------------


def test_literal_values_keep_their_types() -> None:
    text = """
s = "text"
i = 42
neg = -5
spaced_neg = - 7
f = 0.7
e = 1e3
t = true
n = null
l = ["a", 1, false]
o = { url = "http://x", "quoted key" = 2, weight = 3 }
nested = [{ a = [1, { b = null }] }]
paren = (5)
"""
    got = tree(text)
    assert got == {
        "s": "text",
        "i": 42,
        "neg": -5,
        "spaced_neg": -7,
        "f": 0.7,
        "e": 1000.0,
        "t": True,
        "n": None,
        "l": ["a", 1, False],
        "o": {"url": "http://x", "quoted key": 2, "weight": 3},
        "nested": [{"a": [1, {"b": None}]}],
        "paren": 5,
    }
    assert type(got["i"]) is int and type(got["f"]) is float


def test_string_escapes() -> None:
    assert tree(r'a = "q\"q \\ \t \n \u00e9 \U0001F600"') == {"a": 'q"q \\ \t \n é 😀'}


def test_invalid_escape_is_reported_at_the_backslash() -> None:
    text = 'routers "r" { rule = "PathRegexp(`^/v\\d+`)" }'
    assert errors(text) == [("t.hcl:1:38", "invalid escape sequence '\\d' in a string")]


def test_heredocs() -> None:
    text = "a = <<EOF\nline one\n  line two\nEOF\nb = <<-EOT\n    indented\n      more\n    EOT\nc = 1\n"
    assert tree(text) == {"a": "line one\n  line two\n", "b": "indented\n  more\n", "c": 1}


def test_heredoc_with_crlf_line_endings() -> None:
    assert tree("a = <<EOF\r\nx\r\nEOF\r\nb = 2\r\n") == {"a": "x\n", "b": 2}


def test_byte_order_mark_is_ignored() -> None:
    assert tree("\ufeffa = 1") == {"a": 1}


def test_directive_escape_is_literal() -> None:
    assert tree('a = "%%{x}"') == {"a": "%{x}"}


# -- the `;` extension --------------------------------------------------------------------------


def test_semicolon_separated_one_line_block() -> None:
    config, diags = load('middlewares "rl" { type = "rate-limit"; rate = 60; burst = 10 }')
    assert list(diags) == []
    assert config.tree == {"middlewares": {"rl": {"type": "rate-limit", "rate": 60, "burst": 10}}}
    spans = config.spans
    assert str(spans.find(("middlewares", "rl"))) == "t.hcl:1:1"
    assert str(spans.value_span(("middlewares", "rl"))) == "t.hcl:1:13"
    assert str(spans.find(("middlewares", "rl", "type"))) == "t.hcl:1:20"
    assert str(spans.find(("middlewares", "rl", "rate"))) == "t.hcl:1:41"
    assert str(spans.value_span(("middlewares", "rl", "rate"))) == "t.hcl:1:48"
    assert str(spans.find(("middlewares", "rl", "burst"))) == "t.hcl:1:52"
    assert str(spans.value_span(("middlewares", "rl", "burst"))) == "t.hcl:1:60"


def test_error_after_a_semicolon_keeps_its_line_and_column() -> None:
    text = 'services "s" {}\nmiddlewares "rl" { type = "rate-limit"; rate = sixty; burst = 10 }'
    assert errors(text) == [("t.hcl:2:48", "only literal values are supported: `sixty` is a reference")]


def test_syntax_error_at_a_misplaced_semicolon() -> None:
    assert errors("a { b = 1; c = ; d = 2 }") == [
        ("t.hcl:1:16", "syntax error: unexpected ';'; expected a value")
    ]


def test_semicolons_inside_strings_comments_heredocs_and_backticks_are_text() -> None:
    text = """
routers "r" { rule = "Host(`a;b`) && Path(`/;x`)"; service = "s;t" } # ; not a separator
services "s" { note = <<EOF
one; two
EOF
} // ;
/* ; */ entrypoints "e" { address = "0.0.0.0:80"; x = "${X:-a;b}" }
"""
    assert tree(text) == {
        "routers": {"r": {"rule": "Host(`a;b`) && Path(`/;x`)", "service": "s;t"}},
        "services": {"s": {"note": "one; two\n"}},
        "entrypoints": {"e": {"address": "0.0.0.0:80", "x": "a;b"}},
    }


def test_semicolons_separate_object_members_too() -> None:
    assert tree('a = { url = "x"; weight = 2 }') == {"a": {"url": "x", "weight": 2}}


# -- interpolation ----------------------------------------------------------------------------


def test_env_variables_in_strings() -> None:
    text = 'a = "Bearer ${TOKEN}"\nb = "${HOST:-localhost}:${PORT:-80}"\nc = "$${literal}"'
    assert tree(text, {"TOKEN": "t0k", "PORT": "8080"}) == {
        "a": "Bearer t0k",
        "b": "localhost:8080",
        "c": "${literal}",
    }


def test_env_value_is_not_unescaped() -> None:
    assert tree('a = "${V}"', {"V": "a\\nb"}) == {"a": "a\\nb"}


def test_default_is_written_like_the_rest_of_the_string() -> None:
    assert tree('a = "${V:-x\\ty}"') == {"a": "x\ty"}


def test_env_variables_in_heredocs_and_labels() -> None:
    text = 'services "${NAME}" {\n  h = <<-EOF\n    key=${KEY:-none}\n    EOF\n}'
    assert tree(text, {"NAME": "api"}) == {"services": {"api": {"h": "key=none\n"}}}


def test_unset_variable_is_an_error_at_its_dollar() -> None:
    text = 'middlewares "jwt" { type = "jwt"; value = "key: ${JWT_SECRET}" }'
    _, diags = load(text)
    [error] = diags.errors
    assert (str(error.span), error.message) == ("t.hcl:1:49", "environment variable 'JWT_SECRET' is not set")
    assert error.hint is not None and "${JWT_SECRET:-" in error.hint


def test_columns_after_an_interpolation_are_exact() -> None:
    text = 'a = "${HOST:-a-long-default-value}"; b = oops; c = "${HOST}"'
    assert errors(text) == [
        ("t.hcl:1:42", "only literal values are supported: `oops` is a reference"),
        ("t.hcl:1:53", "environment variable 'HOST' is not set"),
    ]


def test_unset_variable_in_a_heredoc_points_into_it() -> None:
    assert errors("a = <<EOF\nfirst\n  x ${NOPE} y\nEOF\n") == [
        ("t.hcl:3:5", "environment variable 'NOPE' is not set")
    ]


def test_interpolation_outside_a_string_is_a_syntax_error_with_a_hint() -> None:
    _, diags = load("a = ${X}")
    [error] = diags.errors
    assert (str(error.span), error.message) == (
        "t.hcl:1:5",
        "syntax error: unexpected '${'; expected a value",
    )
    assert error.hint == 'interpolation works inside quoted strings only: write "${NAME}"'


# -- non-literal expressions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("var.x", "an attribute reference"),
        ("round-robin", "a reference"),
        ("upper(1)", "a function call"),
        ("true ? 1 : 2", "a conditional expression"),
        ("1 + 2", "an operator expression"),
        ("!true", "an operator expression"),
        ("[for s in [1] : s]", "a for expression"),
        ("a[0]", "an index expression"),
        ('"${var.x}"', "a template interpolation"),
        ('"%{ if true }x%{ endif }"', "a template directive"),
    ],
)
def test_non_literal_expressions_are_rejected_at_their_position(value: str, kind: str) -> None:
    [(where, message)] = errors(f'services "s" {{\n  x = [1, {value}]\n}}')
    assert message.startswith("only literal values are supported: ")
    assert message.endswith(f" is {kind}")
    assert where == ("t.hcl:2:12" if value.startswith('"') else "t.hcl:2:11")


def test_a_bad_attribute_is_dropped_and_the_rest_kept() -> None:
    config, diags = load('s "x" {\n  a = nope\n  b = 2\n}')
    assert len(diags.errors) == 1
    assert config.tree == {"s": {"x": {"b": 2}}}


def test_number_too_large() -> None:
    assert errors("a = 1e999") == [("t.hcl:1:5", "the number 1e999 is too large")]


def test_a_run_of_negative_digits_is_an_operator_expression_not_a_traceback() -> None:
    """python-hcl2 lexes `-1-2.5` as one FLOAT_LITERAL, which float() refuses."""
    assert errors("a = -1-2.5\nb = [-1-2e3]") == [
        ("t.hcl:1:5", "only literal values are supported: `-1-2.5` is an operator expression"),
        ("t.hcl:2:6", "only literal values are supported: `-1-2e3` is an operator expression"),
    ]
    assert tree("a = -1.5e-3\nb = 2.5E-1") == {"a": -0.0015, "b": 0.25}


# -- syntax errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("a { rate 60 }", "t.hcl:1:10", "syntax error: unexpected '60'; expected '=' or '{'"),
        ("rate: 60", "t.hcl:1:5", "syntax error: unexpected ':'; expected '=' or '{'"),
        ('a "x" = 1', "t.hcl:1:7", "syntax error: unexpected '='; expected a block label or '{'"),
        ("a = [1,", "t.hcl:1:8", "syntax error: unexpected end of file; expected a value or ']'"),
        ("a {\n  b = 1\n", "t.hcl:3:1", "syntax error: unexpected end of file; expected '}'"),
        ("a = 1 2", "t.hcl:1:7", "syntax error: unexpected '2'; expected a newline, ';', '}' or end of file"),
        ("a { b = 1 } }", "t.hcl:1:13", "syntax error: unexpected '}'; expected end of file"),
        (
            'a = "no end\nb = 1',
            "t.hcl:1:5",
            "unterminated string: a quoted string must end on the line it starts (use a heredoc for more lines)",
        ),
        ("x = 1\n/* open", "t.hcl:2:1", "unterminated comment: '/*' is never closed by '*/'"),
        (
            "x = <<EOF\nbody\n",
            "t.hcl:1:5",
            "heredoc '<<EOF' is never closed: expected a line holding only EOF",
        ),
    ],
)
def test_syntax_errors_name_the_place_and_what_was_expected(text: str, where: str, message: str) -> None:
    assert errors(text) == [(where, message)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            'services "x" {\n  url: "h"\n}\nrouters "y" {\n  rule = \n}\nentrypoints "e" { address = "1" }\n',
            [
                ("t.hcl:2:6", "syntax error: unexpected ':'; expected '=' or '{'"),
                ("t.hcl:5:10", "syntax error: unexpected end of line; expected a value"),
            ],
            id="each-broken-block",
        ),
        pytest.param(
            "a { b = 1 }; c { d 2 }; e { f 3 }",
            [
                ("t.hcl:1:20", "syntax error: unexpected '2'; expected '=' or '{'"),
                ("t.hcl:1:31", "syntax error: unexpected '3'; expected '=' or '{'"),
            ],
            id="items-separated-by-semicolons",
        ),
        pytest.param(
            "a { b = 1 } }\nc { d 4 }\n",
            [
                ("t.hcl:1:13", "syntax error: unexpected '}'; expected end of file"),
                ("t.hcl:2:7", "syntax error: unexpected '4'; expected '=' or '{'"),
            ],
            id="a-stray-closer-is-one-error",
        ),
        pytest.param(  # the brace never closes: everything after it belongs to the broken item
            "x {\n  y = 1\n\nz { w 2 }\nq { r 3 }\n",
            [("t.hcl:4:7", "syntax error: unexpected '2'; expected '=' or '{'")],
            id="an-unclosed-block-is-one-error",
        ),
        pytest.param(  # blanking the unclosed block leaves `E` ending at the same place
            'ok "x" { a = 1 }\nE\n{',
            [("t.hcl:3:2", "syntax error: unexpected end of file; expected '}'")],
            id="the-end-of-file-is-not-echoed",
        ),
    ],
)
def test_recovery_reports_one_syntax_error_per_broken_item(
    text: str, expected: list[tuple[str, str]]
) -> None:
    assert errors(text) == expected


def test_syntax_errors_stop_at_twenty_per_file() -> None:
    found = errors("".join(f"a{i} {{ rate {i} }}\n" for i in range(30)))
    assert len(found) == 20
    assert found[-1][0] == "t.hcl:20:12"


def test_colon_gets_a_hint() -> None:
    _, diags = load("rate: 60")
    assert diags.errors[0].hint == "HCL assigns with '=', not ':'"


def test_caret_rendering_points_at_the_column() -> None:
    config, diags = load('m "x" { a = 1; b = c }')
    rendered = render_text(diags, config.sources)
    assert rendered.splitlines()[:3] == [
        "t.hcl:1:20: error: only literal values are supported: `c` is a reference",
        '    m "x" { a = 1; b = c }',
        "                       ^",
    ]


# -- duplicates inside one file ----------------------------------------------------------------


def test_attribute_set_twice_in_one_block() -> None:
    assert errors('m "x" {\n  rate = 1\n  rate = 2\n}') == [
        ("t.hcl:3:3", "'rate' is already defined at t.hcl:2:3")
    ]


def test_object_key_twice() -> None:
    assert errors('a = { url = "x", url = "y" }') == [
        ("t.hcl:1:18", "key 'url' is already defined at t.hcl:1:7")
    ]


def test_label_twice_in_one_file() -> None:
    assert errors('services "api" {}\n\nservices "api" {}') == [
        ("t.hcl:3:1", "service 'api' is already defined at t.hcl:1:1")
    ]


# -- spans ------------------------------------------------------------------------------------


def test_spans_of_list_elements_and_object_keys() -> None:
    text = """services "api" {
  load_balancer {
    servers = [
      { url = "http://a", weight = 2 },
      {  url = "http://b" },
    ]
  }
}
"""
    config, diags = load(text)
    assert list(diags) == []
    spans = config.spans
    base = ("services", "api", "load_balancer", "servers")
    assert str(spans.find(base)) == "t.hcl:3:5"
    assert str(spans.value_span(base)) == "t.hcl:3:15"
    assert str(spans.find((*base, 0))) == "t.hcl:4:7"
    assert str(spans.find((*base, 0, "url"))) == "t.hcl:4:9"
    assert str(spans.value_span((*base, 0, "url"))) == "t.hcl:4:15"
    assert str(spans.find((*base, 0, "weight"))) == "t.hcl:4:27"
    assert str(spans.find((*base, 1, "url"))) == "t.hcl:5:10"
    # A path below what was written falls back to the longest known prefix.
    assert str(spans.find((*base, 1, "url", "scheme"))) == "t.hcl:5:10"
    assert str(spans.find(("services", "api", "scaling", "min_replicas"))) == "t.hcl:1:1"
    assert spans.find(("nothing",)) is None
    assert spans.get((*base, 1)) is not None and spans.get((*base, 7)) is None


def test_spans_of_repeated_blocks() -> None:
    config, _ = load('s "x" {\n  servers { url = "a" }\n  servers { url = "b" }\n}')
    assert str(config.spans.find(("s", "x", "servers", 1, "url"))) == "t.hcl:3:13"
    assert str(config.spans.find(("s", "x", "servers", 1))) == "t.hcl:3:3"


def test_columns_count_characters_with_tabs_and_crlf() -> None:
    text = 's "x" {\r\n\ta = "é"; b = nope\r\n}\r\n'
    assert errors(text) == [("t.hcl:2:15", "only literal values are supported: `nope` is a reference")]


# -- the A3S documentation snippets -------------------------------------------------------------


class _AnyEnv(Mapping[str, str]):
    """Every variable is set, so a snippet's `${JWT_SECRET}` does not count against it."""

    def __getitem__(self, key: str) -> str:
        return "value"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@pytest.mark.parametrize("path", sorted(DOCS.glob("*.hcl")), ids=lambda p: p.name)
def test_every_documentation_snippet_loads(path: Path) -> None:
    diags = Diagnostics()
    # load_texts: the snippet alone (load_config would also read the directories its file
    # provider names, /etc/gateway/conf.d/ in these snippets).
    config = load_texts({str(path): path.read_text(encoding="utf-8")}, _AnyEnv(), diags)
    assert list(diags) == [], render_text(diags, config.sources)
    assert config.tree


def test_documentation_snippets_exist() -> None:
    assert len(list(DOCS.glob("*.hcl"))) >= 10


def test_the_examples_in_docs_config_md_load() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "config.md").read_text(encoding="utf-8")
    blocks = [part.split("```", 1)[0] for part in doc.split("```hcl\n")[1:]]
    assert len(blocks) >= 3
    for block in blocks:
        diags = Diagnostics()
        config = load_texts({"doc.hcl": block}, _AnyEnv(), diags)
        assert list(diags) == [], render_text(diags, config.sources)
