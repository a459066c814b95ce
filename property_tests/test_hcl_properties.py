"""Properties of the HCL front end: robustness, the `;` extension, interpolation, exact columns."""

from __future__ import annotations

from typing import Any

import hcl2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lark.exceptions import UnexpectedInput

from a3s_gateway.compiler._hcl_errors import describe_syntax_error
from a3s_gateway.compiler._hcl_scan import prepare
from a3s_gateway.compiler.diagnostics import Diagnostics
from a3s_gateway.compiler.interpolate import interpolate
from a3s_gateway.compiler.merge import load_texts

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters that matter to the scanner or to python-hcl2, plus some ordinary ones.
HCL_ALPHABET = 'ab_1 =;"{}[](),.:$%#/*<-\\`\n\r\téEOF'
HCL_CHUNKS = st.sampled_from(
    [
        "${X}",
        "${Y:-d}",
        "$${",
        "%{",
        "%%{",
        "<<EOF\n",
        "\nEOF\n",
        "<<-EOF\n",
        "x = ",
        'b "l" {',
        "}",
        "/*",
        "*/",
        "//",
    ]
)
hcl_like = st.lists(st.one_of(st.text(HCL_ALPHABET, max_size=3), HCL_CHUNKS), max_size=25).map("".join)

names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: n not in {"true", "false", "null", "in", "for", "if", "else", "endif", "endfor", "for_each"}
)
content = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
semicolon_rich = st.text(';#/*`"\\${}%ab \t', max_size=20)


def load(text: str, env: dict[str, str] | None = None) -> tuple[dict[str, Any], Diagnostics]:
    diags = Diagnostics()
    config = load_texts({"p.hcl": text}, env or {}, diags)
    return config.tree, diags


def quote(value: str) -> str:
    """An HCL string literal whose value is exactly `value`."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + escaped.replace("${", "$${").replace("%{", "%%{") + '"'


# -- robustness -------------------------------------------------------------------------------


@SETTINGS
@given(st.text())
def test_arbitrary_text_never_raises(text: str) -> None:
    _, diags = load(text)
    for d in diags:
        assert d.span is None or (d.span.line >= 1 and d.span.col >= 1)


@SETTINGS
@given(hcl_like)
def test_hcl_like_text_never_raises_and_errors_point_inside_the_file(text: str) -> None:
    _, diags = load(text, {"X": "1"})
    lines = text.split("\n")
    for d in diags:
        assert d.span is not None
        assert 1 <= d.span.line <= len(lines)
        assert 1 <= d.span.col <= len(lines[d.span.line - 1]) + 1


@SETTINGS
@given(st.lists(st.one_of(st.text(HCL_ALPHABET, max_size=3), HCL_CHUNKS), min_size=1, max_size=6), st.data())
def test_syntax_errors_come_in_file_order_the_first_as_a_plain_parse_reports_it(
    items: list[str], data: st.DataObject
) -> None:
    # Well-formed blocks with arbitrary (mostly broken) items between them.
    good = 'ok "x" { a = 1 }'
    text = "\n".join(data.draw(st.sampled_from([good, item])) for item in items) + "\n" + good
    _, diags = load(text, {"X": "1"})
    syntax = [(d.span.line, d.span.col) for d in diags if d.code == "syntax" and d.span is not None]
    assert syntax == sorted(syntax) and len(set(syntax)) == len(syntax)
    assert len(syntax) <= 20
    prepared = prepare(text)
    if prepared.problems:
        return
    try:
        hcl2.parses_to_tree(prepared.text)
    except UnexpectedInput as exc:  # recovery only adds errors after the one a single parse finds
        offset = describe_syntax_error(exc, text, prepared.separators)[0]
        line = text.count("\n", 0, offset) + 1
        assert syntax[0] == (line, offset - (text.rfind("\n", 0, offset) + 1) + 1)
    else:
        assert syntax == []


@SETTINGS
@given(hcl_like)
def test_prepare_moves_no_character(text: str) -> None:
    prepared = prepare(text)
    assert len(prepared.text) == len(text)
    for i, (before, after) in enumerate(zip(text, prepared.text, strict=True)):
        if before != after:
            assert (before == ";" and after == "\n" and i in prepared.separators) or after == "_" or i == 0


# -- the `;` extension ------------------------------------------------------------------------


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A one-block document whose strings, comments and heredocs are full of `;`."""
    keys = draw(st.lists(names, min_size=1, max_size=6, unique=True))
    parts: list[str] = []
    expected: dict[str, Any] = {}
    for key in keys:
        kind = draw(st.sampled_from(["string", "number", "heredoc", "list"]))
        if kind == "string":
            value: Any = draw(st.one_of(semicolon_rich, content))
            parts.append(f"{key} = {quote(value)}")
        elif kind == "number":
            value = draw(st.integers(-(10**12), 10**12))
            parts.append(f"{key} = {value}")
        elif kind == "heredoc":
            lines = draw(st.lists(semicolon_rich.filter(lambda s: s.strip() != "EOF"), max_size=3))
            body = "".join(line.replace("${", "$${").replace("%{", "%%{") + "\n" for line in lines)
            value = "".join(line + "\n" for line in lines)
            parts.append(f"{key} = <<EOF\n{body}EOF\n")
        else:
            value = draw(st.lists(semicolon_rich, max_size=3))
            parts.append(f"{key} = [{', '.join(quote(v) for v in value)}]")
        expected[key] = value
        if not parts[-1].endswith("\n"):  # a heredoc ends its own line
            parts[-1] += draw(st.sampled_from(["", " /* ; */", " # a; b\n", " // c;d\n"]))
    text = "m " + quote(draw(semicolon_rich)) + " {"
    for part in parts:
        separator = "" if part.endswith("\n") else draw(st.sampled_from(["; ", "\n", " ;\n"]))
        text += " " + part + separator
    return text + "}\n", expected


@SETTINGS
@given(documents())
def test_semicolons_in_strings_comments_and_heredocs_are_never_separators(
    doc: tuple[str, dict[str, Any]],
) -> None:
    text, expected = doc
    tree, diags = load(text)
    assert list(diags) == [], [str(d.span) + " " + d.message for d in diags]
    [body] = tree["m"].values()
    assert body == expected


@SETTINGS
@given(st.lists(st.tuples(names, st.one_of(st.integers(0, 10**6), semicolon_rich)), min_size=1, max_size=6))
def test_one_line_blocks_have_exact_columns(attributes: list[tuple[str, int | str]]) -> None:
    unique = list(dict(attributes).items())
    line = 'middlewares "x" {'
    columns: dict[str, tuple[int, int]] = {}
    for i, (key, value) in enumerate(unique):
        line += ";" if i else ""
        line += " "
        name_col = len(line) + 1
        line += f"{key} = "
        columns[key] = (name_col, len(line) + 1)
        line += quote(value) if isinstance(value, str) else str(value)
    line += " }"
    diags = Diagnostics()
    config = load_texts({"p.hcl": "\n" + line}, {}, diags)
    assert list(diags) == []
    for key, (name_col, value_col) in columns.items():
        path = ("middlewares", "x", key)
        assert str(config.spans.find(path)) == f"p.hcl:2:{name_col}"
        assert str(config.spans.value_span(path)) == f"p.hcl:2:{value_col}"


# -- interpolation ----------------------------------------------------------------------------


@SETTINGS
@given(st.text().filter(lambda t: "${" not in t), st.dictionaries(names, st.text(), max_size=3))
def test_text_without_interpolation_is_unchanged(text: str, env: dict[str, str]) -> None:
    result = interpolate(text, env)
    assert result.value == text and result.errors == ()


@st.composite
def templates(draw: st.DrawFn) -> tuple[str, dict[str, str], str]:
    """Literal text and references, with the environment and the expected result."""
    env = draw(st.dictionaries(names.map(str.upper), st.text(max_size=5), max_size=4))
    source, expected = [], []
    for _ in range(draw(st.integers(0, 6))):
        choice = draw(st.sampled_from(["text", "set", "default", "escape"]))
        if choice == "text":
            text = draw(st.text("ab:-}{ $", max_size=5))
            while "${" in text or text.endswith("$"):
                text = text.replace("${", "{").rstrip("$")
            source.append(text)
            expected.append(text)
        elif choice == "escape":
            source.append("$${")
            expected.append("${")
        else:
            name = draw(names).upper()
            default = draw(st.text("ab/:. ", max_size=5))
            if choice == "set" and name in env:
                source.append("${" + name + "}")
                expected.append(env[name])
            else:
                source.append("${" + name + ":-" + default + "}")
                expected.append(env.get(name) or default)
    return "".join(source), env, "".join(expected)


@SETTINGS
@given(templates())
def test_interpolation_matches_a_reference_expansion(case: tuple[str, dict[str, str], str]) -> None:
    text, env, expected = case
    result = interpolate(text, env)
    assert result.errors == ()
    assert result.value == expected


@SETTINGS
@given(templates())
def test_strings_in_files_interpolate_like_the_pure_function(case: tuple[str, dict[str, str], str]) -> None:
    text, env, expected = case
    if any(c in text for c in '"\\%') or "\n" in text:
        return
    tree, diags = load(f'a = "{text}"; b = 1', env)
    assert list(diags) == []
    assert tree == {"a": expected, "b": 1}
