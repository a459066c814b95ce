"""The rule fast path (compiler/rules/_fast.py) against the grammar (hypothesis).

For any text, `parse_chain` either declines (None: the grammar parses it) or gives exactly what
the lark parse gives: the same AST, the same column for every matcher (not part of AST
equality) and the same problems, in the same order. Texts are drawn from the pieces of the
common shapes (matcher names, right or wrong; backtick and double-quoted arguments; `&&`, `||`,
`!`, parentheses, commas, spaces, tabs, line breaks, comments) so that most are near misses of
the accepted shape: every syntax error must be declined, never misread.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from a3s_gateway.compiler.rules import iter_matchers
from a3s_gateway.compiler.rules._catalog import ARITY
from a3s_gateway.compiler.rules._fast import parse_chain
from a3s_gateway.compiler.rules._grammar import parse_with_grammar

SETTINGS = settings(max_examples=1500, deadline=None)

names = st.sampled_from(
    [
        *sorted(set(ARITY["http"]) | set(ARITY["tcp"])),
        *["host", "Headers", "PathPrefx", "HostRegexp", "_x", "é", "Host1", "1Host", "and"],
    ]
)
arg_text = st.text(st.sampled_from(list("ab./*{}:-_ \t\r\n\\\"'&|()é")), max_size=6)


def rarely(
    common: st.SearchStrategy[str], rare: st.SearchStrategy[str], one_in: int = 10
) -> st.SearchStrategy[str]:
    """Mostly `common`, sometimes `rare`: a rule has up to twenty places to break, and about half
    the rules drawn should still be in the fast path's shape."""
    return st.integers(1, one_in).flatmap(lambda n: rare if n == 1 else common)


space = rarely(
    st.sampled_from(["", " ", "\t", " \t"]),
    st.sampled_from(["\n", " \r\n", "\r", "/* c */", "// c\n", "\u00a0", "\x0b"]),
    one_in=40,
)
quoted = rarely(
    arg_text.map(lambda s: "`" + s.replace("`", "") + "`"),
    st.one_of(
        arg_text.map(lambda s: '"' + s.replace('"', "").replace("\\", "\\\\") + '"'),
        st.sampled_from(['"\\q"', "`", '"', "'a'", "x"]),
    ),
)
separator = rarely(st.sampled_from([",", ", ", " ,", ",\t"]), st.sampled_from([" ", ",\n", ",,", ""]))
operator = rarely(st.sampled_from(["&&", "||"]), st.sampled_from(["&", "|", "and", "&&!", "", "&&&", "|||"]))


@st.composite
def calls(draw: st.DrawFn) -> str:
    args = draw(st.lists(quoted, max_size=3))
    text = draw(names) + draw(space) + "(" + draw(space) + draw(separator).join(args)
    if args and draw(st.integers(0, 9)) == 0:
        text += ","  # a trailing comma: the grammar allows it
    return text + draw(space) + ")"


@st.composite
def rules(draw: st.DrawFn) -> str:
    parts = draw(st.lists(calls(), min_size=1, max_size=4))
    chain = draw(operator)
    text = parts[0]
    for part in parts[1:]:
        op = chain if draw(st.integers(0, 4)) else draw(operator)  # sometimes mixed
        text += draw(space) + op + draw(space) + part
    if draw(st.integers(0, 9)) == 0:
        text = draw(st.sampled_from(["!", "(", ")", "!(", ","])) + text
    if draw(st.integers(0, 9)) == 0:
        text += draw(st.sampled_from([")", "&&", "(", ",", "`", "x"]))
    return draw(space) + text + draw(space)


def _same_as_grammar(text: str, kind: str) -> bool:
    fast = parse_chain(text, kind)  # type: ignore[arg-type]
    if fast is None:
        return False
    ast, problems = fast
    reference = parse_with_grammar(text, kind)  # type: ignore[arg-type]
    assert reference.ast == ast, text
    assert [m.col for m in iter_matchers(ast)] == [m.col for m in iter_matchers(reference.ast)], text
    assert reference.problems == problems, text
    return True


@SETTINGS
@given(rules(), st.sampled_from(["http", "tcp"]))
@example("Host(`a.example.com`) && PathPrefix(`/v1`)", "http")
@example(" Host( `a` ,\t`b` )\t||\tHost(`c`) ", "http")
@example("Host(`a`) && Path(``)", "http")
@example("HostSNI(`*`)", "tcp")
@example("Host(`a\r`) && Heders(`x`, `y`)", "http")
def test_the_fast_path_gives_what_the_grammar_gives(text: str, kind: str) -> None:
    _same_as_grammar(text, kind)


def test_the_common_shapes_take_the_fast_path() -> None:
    """The shapes provider-fed fleets write (benchmarks/routers_hcl.py) are read without lark, and
    what it declines goes to the grammar."""
    for text in (
        "Host(`svc1.team1.example.com`) && PathPrefix(`/api/v1`)",
        "Host(`a`)",
        "PathPrefix(`/r2/`)",
        "Host(`a`) && Path(`/health3`)",
        "Host(`a`) || Host(`b`) || Host(`c`)",
        "Header(`X-Env`, `prod`) && Host(`a`)",
        "Hots(`a`)",  # unknown matcher: still the fast path, with the grammar's diagnostic
    ):
        assert _same_as_grammar(text, "http"), text
    for text in (
        'Host("a")',
        "!Host(`a`)",
        "(Host(`a`))",
        "Host(`a`) && Path(`/`) || Host(`b`)",
        "Host(`a`,)",
    ):
        assert parse_chain(text, "http") is None, text
