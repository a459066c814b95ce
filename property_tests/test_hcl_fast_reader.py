"""The literal-subset HCL reader (compiler/_hcl_fast.py) against python-hcl2 (hypothesis).

For any text, the fast reader either declines (`Unsupported`: python-hcl2 parses it, as before)
or gives exactly what the python-hcl2 path gives: the same document (every value with its type,
every span: file, line, column) and the same diagnostics in the same order. Texts are drawn as
configurations in and around the subset (strings with escapes, `${VAR}` references set and
unset, `$${`, `%{`; numbers small, negative, decimal and too large; lists and objects with
commas, line breaks, comments and duplicate keys), and then some are broken at a random place
with a piece of HCL syntax, so that near misses of the subset are tried: a syntax error must be
declined, never misread.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from a3s_gateway.compiler._hcl_fast import Unsupported, read_literal_subset
from a3s_gateway.compiler._hcl_lark import parse_with_hcl2
from a3s_gateway.compiler._hcl_scan import prepare
from a3s_gateway.compiler.diagnostics import Diagnostics
from a3s_gateway.compiler.hcl import Document, _report, parse_hcl, parse_prepared
from a3s_gateway.compiler.source import SourceFile
from benchmarks.routers_hcl import routers_hcl

SETTINGS = settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
ENV = {"X": "1", "EMPTY": ""}


names = st.sampled_from(["a", "url", "rule", "service", "load_balancer", "x-y", "_k", "format", "index"])
# Legal HCL the fast reader declines: python-hcl2 lexes these as keywords or literals.
reserved = st.sampled_from(["in", "for", "true", "null", "if", "for_each"])
string_content = st.text(st.sampled_from(list("ab /.:é#;*{}\t\r")), max_size=6)
string_pieces = st.sampled_from(
    [
        *["${X}", "${EMPTY:-d}", "${UNSET}", "${UNSET:-dflt}", "$${", "%%{", "\\n", '\\"', "\\\\", "\\q"],
        *["\\u00e9", "\\u12", "$", "%", "$$", "$$$${X}", "%{", "${a.b}", "${ X }"],
    ]
)
strings = st.lists(st.one_of(string_content, string_pieces), max_size=3).map(lambda p: '"' + "".join(p) + '"')
numbers = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(["0", "-0", "007", "1.5", "-2.25", "0.10", "9" * 401, "-" + "9" * 401, "1" * 399 + ".5"]),
)
scalars = st.one_of(strings, numbers, st.sampled_from(["true", "false", "null"]))
blank = st.sampled_from(["", " ", "  ", "\t", "\r"])
line_end = st.sampled_from(["\n", "\n", "\r\n", " # c\n", "// c\n", "\n\n", ";"])


def values(depth: int = 0) -> st.SearchStrategy[str]:
    if depth >= 2:
        return scalars
    inner = values(depth + 1)
    lists = st.tuples(
        st.lists(inner, max_size=3),
        st.sampled_from([", ", ",", ",\n", " ,"]),
        st.sampled_from(["", ",", "\n"]),
    ).map(lambda t: "[" + t[1].join(t[0]) + t[2] + "]")
    members = st.tuples(
        st.one_of(names, strings, reserved), st.sampled_from([" = ", "=", ": ", " :"]), inner
    ).map("".join)
    objects = st.tuples(st.lists(members, max_size=3), st.sampled_from([", ", "\n", ",\n", " # c\n"])).map(
        lambda t: "{ " + t[1].join(t[0]) + " }"
    )
    return st.one_of(scalars, lists, objects)


@st.composite
def bodies(draw: st.DrawFn, depth: int = 0) -> str:
    out = []
    for _ in range(draw(st.integers(0, 3))):
        indent = "  " * depth
        if depth < 2 and draw(st.booleans()):
            labels = draw(st.lists(st.one_of(strings, names), max_size=2))
            head = " ".join([draw(names), *labels])
            inner = draw(bodies(depth + 1))
            out.append(f"{indent}{head} {{\n{inner}{indent}}}" + draw(line_end))
        else:
            name = draw(st.one_of(names, names, names, reserved))
            out.append(f"{indent}{name}{draw(blank)}={draw(blank)}{draw(values())}{draw(line_end)}")
    return "".join(out)


# Pieces of HCL, and of what is not HCL, to break a configuration with.
BREAKERS = st.sampled_from(
    [
        *["{", "}", "[", "]", ",", ",,", "=", "==", "=>", ":", "::", '"', "\n", "\r", "\x0c", "\u00a0", " "],
        *["<<EOF\n", "/*", "*/", "/* c */", "#", "-", "- ", "a", "a.b", "(", ")", ".", "1.", "e3", "0x"],
        *["${", "%{", "\\", "in ", "for ", "true ", "x = 1 "],
    ]
)


@st.composite
def configs(draw: st.DrawFn) -> str:
    """A configuration in and around the subset, then (half of the time) one or two edits: a piece
    inserted, or one to three characters deleted, at a random place."""
    text = draw(bodies())
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        # Mostly next to a token's edge, where a near miss of the subset is likeliest.
        edges = [
            i
            for i in range(len(text) + 1)
            if text[i - 1 : i + 1].strip(" \t\r\n=,[]{}:") != text[i - 1 : i + 1]
        ]
        at = draw(st.sampled_from(edges) if edges and draw(st.booleans()) else st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:at] + draw(BREAKERS) + text[at:]
        else:
            text = text[:at] + text[at + draw(st.integers(1, 3)) :]
    return text


def fast_read_matches_python_hcl2(text: str) -> bool:
    """True when the fast reader read `text` (and then agrees with python-hcl2); False when it
    declined. Files `prepare` rejects never reach either reader."""
    source = SourceFile.from_text("p.hcl", text)
    prepared = prepare(text)
    if prepared.problems:
        return False
    expected_diags = Diagnostics()
    expected = parse_with_hcl2(source, ENV, expected_diags, prepared)
    diags = Diagnostics()
    try:
        items, problems = read_literal_subset(prepared.text, text, ENV, source.path)
    except Unsupported:
        return False
    _report(source, diags, problems)
    assert expected is not None, f"python-hcl2 rejects what the fast reader read: {text!r}"
    # repr, not ==: True == 1 and 1 == 1.0, but the types matter to validation.
    assert repr(Document("p.hcl", items)) == repr(expected), text
    assert [d.to_json() for d in diags] == [d.to_json() for d in expected_diags], text
    return True


@SETTINGS
@given(configs())
@example('a = "x"\nb { c = 1 }\n')
@example('routers "r" {\n  rule = "Host(`a`)"\n  x = [{ url = "${X}" }, { url = "${UNSET}" }]\n}\n')
@example('a = { k = 1, k = 2 }\nb = [1, -2.5, "\\q"]\n')
@example("a = -" + "9" * 401 + "\n")
@example('b "${UNSET}" "\\q" {\n  c = "${UNSET}"\n}\n')
@example("a = { x = 1 y = 2 }\n")
@example("a = 31.\n")
@example("a {\n" * 700 + "}\n" * 700)  # deeper than the reader goes: python-hcl2 reports it
@example("a = " + "[" * 700 + "]" * 700 + "\n")
@example('a="";a=""\nb { c = 1; d = "x" }\n')
@example("a = [1\n2]\n")
@example("a = [1\n, 2]\n")
# A thousand examples of two parsers: ~20 s of CPU, over 120 s of wall time on a loaded machine,
# where pytest-timeout's alarm then broke off an example halfway and hypothesis reported it as
# inconsistent data generation. The limit is there for a hang, not for slowness.
@pytest.mark.timeout(900)
def test_the_fast_reader_gives_what_python_hcl2_gives(text: str) -> None:
    fast_read_matches_python_hcl2(text)


def test_provider_fed_configs_take_the_fast_path() -> None:
    """The 10,000-router benchmark's shape (benchmarks/routers_hcl.py) is read without lark."""
    assert fast_read_matches_python_hcl2(routers_hcl(40))
    for text in (
        "a = b\n",
        "a = <<EOF\nx\nEOF\n",
        "a = 1 /* c */\n",
        "b\n{\n}\n",
        'a = "${f(1)}"\n',
        "a = 1 b = 2\n",
    ):
        assert not fast_read_matches_python_hcl2(text), text


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(configs())
@example('a = "x"\nb { c = 1 }\n')
@example('a = "unterminated\nb = 1\n')
@example('a = "\\q"\nb = "\\u12"\nc = -' + "9" * 401 + "\n")
@example('a = "x" # "\nb = "/* in a string"\n')
@example("\ufeffa = 1\n")
@example('a="";a=""\n')
@pytest.mark.timeout(900)
def test_a_text_prepare_leaves_as_it_is_is_read_without_it(text: str) -> None:
    """parse_hcl skips `prepare` for a text it would not change: the same document (spans and
    types) and the same diagnostics as with it, for any text."""
    source = SourceFile.from_text("p.hcl", text)
    expected_diags, diags = Diagnostics(), Diagnostics()
    expected = parse_prepared(source, ENV, expected_diags)
    assert repr(parse_hcl(source, ENV, diags)) == repr(expected), text
    assert [d.to_json() for d in diags] == [d.to_json() for d in expected_diags], text
