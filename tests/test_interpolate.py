"""`${VAR}`, `${VAR:-default}` and `$${` inside string text, as a pure function."""

from __future__ import annotations

from a3s_gateway.compiler.interpolate import (
    Reference,
    Text,
    Unsupported,
    interpolate,
    match_reference,
    split_template,
)


def test_text_without_references_is_unchanged() -> None:
    result = interpolate("plain $ text {with} braces $x", {"x": "no"})
    assert result.value == "plain $ text {with} braces $x"
    assert result.errors == ()


def test_variable_is_read_from_env() -> None:
    assert interpolate("Bearer ${TOKEN}!", {"TOKEN": "abc"}).value == "Bearer abc!"


def test_blanks_inside_braces_are_allowed() -> None:
    assert interpolate("${ TOKEN }", {"TOKEN": "abc"}).value == "abc"


def test_default_applies_when_unset_or_empty() -> None:
    assert interpolate("${HOST:-localhost}", {}).value == "localhost"
    assert interpolate("${HOST:-localhost}", {"HOST": ""}).value == "localhost"
    assert interpolate("${HOST:-localhost}", {"HOST": "db"}).value == "db"
    assert interpolate("${HOST:-}", {}).value == ""


def test_default_may_hold_colons_and_slashes() -> None:
    assert interpolate("${URL:-http://a:80/x}", {}).value == "http://a:80/x"


def test_unset_variable_is_an_error_at_its_dollar() -> None:
    result = interpolate("x = ${MISSING} y", {})
    assert [(e.offset, e.message) for e in result.errors] == [
        (4, "environment variable 'MISSING' is not set")
    ]
    assert result.errors[0].hint is not None and "${MISSING:-" in result.errors[0].hint
    assert result.value == "x = ${MISSING} y"  # left printable


def test_double_dollar_is_a_literal() -> None:
    assert interpolate("$${HOME} and $${", {"HOME": "/root"}).value == "${HOME} and ${"


def test_triple_dollar_is_a_dollar_then_an_escape() -> None:
    assert interpolate("$$${X}", {"X": "1"}).value == "$${X}"


def test_env_values_are_not_interpolated_again() -> None:
    assert interpolate("${A}", {"A": "${B}", "B": "no"}).value == "${B}"


def test_hcl_expressions_are_unsupported() -> None:
    result = interpolate("a ${var.x} b", {})
    assert [(e.offset, e.message.split(":")[0]) for e in result.errors] == [
        (2, "only literal values are supported")
    ]


def test_unclosed_interpolation_is_reported() -> None:
    result = interpolate("abc ${X", {"X": "1"})
    assert [(e.offset, e.message) for e in result.errors] == [(4, "unclosed '${': expected '}'")]


def test_split_keeps_offsets() -> None:
    pieces = split_template("a${B}c${D:-e}")
    assert pieces == [
        Text("a", 0),
        Reference("B", None, 1, 5),
        Text("c", 5),
        Reference("D", "e", 6, 13, default_start=11),
    ]


def test_split_with_escapes_keeps_backslash_pairs_literal() -> None:
    assert split_template(r"\${X}", escapes=True) == [Text(r"\${X}", 0)]
    assert split_template(r"\${X}") == [Text("\\", 0), Reference("X", None, 1, 5)]


def test_unsupported_piece_covers_up_to_the_brace() -> None:
    assert split_template("${a.b}c") == [Unsupported("${a.b}", 0, closed=True), Text("c", 6)]


def test_match_reference_rejects_non_names() -> None:
    assert match_reference("${1X}", 0) is None
    assert match_reference("${X-y}", 0) is None
    assert match_reference('${X:-a"b}', 0) is None
    ref = match_reference("..${X_1:-d}", 2)
    assert ref is not None and (ref.name, ref.default, ref.end) == ("X_1", "d", 11)
