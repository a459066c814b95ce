"""Properties of the rule language (hypothesis).

- printing then parsing gives back the same AST, for any AST and any argument text;
- any text either parses or yields problems: parse_rule never raises, nor does the regexp translator;
- compiled matchers agree with a small reference evaluator written here, plainly and recursively,
  on generated rules and requests; De Morgan's laws and double negation hold for compiled rules;
- the router order (priority, then name) is total and does not depend on declaration order;
- `Host(`*.suffix`)` and `HostSNI(`*.suffix`)` match exactly the names with one whole label (any
  text, even empty) in front of suffix, in any case, as Traefik v3.7's DomainMatchHostExpression.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Callable
from urllib.parse import parse_qs, unquote

from hypothesis import given, settings
from hypothesis import strategies as st

from a3s_gateway.compiler.rules import (
    And,
    Matcher,
    Not,
    Or,
    Rule,
    compile_http,
    compile_tcp,
    default_priority,
    parse_rule,
    sort_key,
    to_text,
)
from a3s_gateway.compiler.rules._catalog import ARITY
from a3s_gateway.compiler.rules._re2 import Re2Error, compile_re2
from tests.rule_inputs import Conn, Fields, Req

FAST = settings(max_examples=200, deadline=None)


def trees(leaves: st.SearchStrategy[Rule]) -> st.SearchStrategy[Rule]:
    return st.recursive(
        leaves,
        lambda sub: st.one_of(
            st.builds(Not, sub),
            st.builds(And, sub, sub),
            st.builds(Or, sub, sub),
        ),
        max_leaves=12,
    )


# -- print then parse ------------------------------------------------------------------------------------

# Any text a Go string can hold: no lone surrogates except the escaped bytes of non-UTF-8 values.
arg_text = st.text(
    st.characters(blacklist_categories=["Cs"]) | st.sampled_from(["`", '"', "\\", "\r", "\n", "\udcff"]),
    max_size=12,
)
any_matcher = st.builds(
    lambda name, args: Matcher(name, tuple(args)),
    st.sampled_from(sorted(set(ARITY["http"]) | set(ARITY["tcp"]))),
    st.lists(arg_text, max_size=3),
)


@FAST
@given(trees(any_matcher))
def test_print_then_parse_gives_the_same_ast(rule: Rule) -> None:
    text = to_text(rule)
    assert parse_rule(text, "http").ast == rule, text
    assert parse_rule(text, "tcp").ast == rule, text


@FAST
@given(st.text(st.sampled_from(list("Host()`\"'&|! \n\\,PathQuery*{}=")) | st.characters(), max_size=40))
def test_any_text_parses_or_yields_problems(text: str) -> None:
    parsed = parse_rule(text, "http")
    assert parsed.ast is not None or parsed.problems
    assert all(p.col >= 1 for p in parsed.problems)


@FAST
@given(st.text(st.sampled_from(list("()[]{}*+?|^$.\\-:,0123456789aAdswbBzQEPpx<>=!i-msU")), max_size=16))
def test_regexp_translation_raises_only_its_own_errors(pattern: str) -> None:
    try:
        compile_re2(pattern)
    except Re2Error:
        pass


# -- compiled matchers against a reference evaluator -----------------------------------------------------


requests = st.builds(
    Req,
    method=st.sampled_from(["GET", "POST", "get"]),
    host=st.sampled_from(["a.com", "A.COM:8080", "a.com.", "b.com", ""]),
    path=st.sampled_from(["/", "/a", "/a/b", "/b", "/a%2Fb", "/a%20b", "/a b"]),
    query=st.sampled_from(["", "q", "q=", "q=1", "q=2&q=1", "r=1"]),
    headers=st.builds(
        Fields, st.lists(st.sampled_from([("X", "1"), ("x", "2"), ("Y", "1")]), max_size=3).map(tuple)
    ),
    client_ip=st.sampled_from(["10.0.0.1", "10.1.2.3", "192.168.0.1", "::1", "::ffff:10.0.0.1"]),
)

http_leaves = st.sampled_from(
    [
        Matcher("Method", ("GET",)),
        Matcher("Method", ("post",)),
        Matcher("Host", ("a.com",)),
        Matcher("Host", ("B.com",)),
        Matcher("Path", ("/a",)),
        Matcher("Path", ("/a b",)),
        Matcher("Path", ("/a%2Fb",)),
        Matcher("PathPrefix", ("/a",)),
        Matcher("Header", ("X", "1")),
        Matcher("Header", ("x", "2")),
        Matcher("Query", ("q",)),
        Matcher("Query", ("q", "1")),
        Matcher("ClientIP", ("10.0.0.0/8",)),
        Matcher("ClientIP", ("::1",)),
        Matcher("HostRegexp", ("^a",)),
        Matcher("PathRegexp", ("b$",)),
        Matcher("HeaderRegexp", ("Y", "^[0-9]$")),
        Matcher("QueryRegexp", ("q", "^[12]$")),
    ]
)


def reference(rule: Rule, req: Req) -> bool:
    """Plain recursive evaluation, each matcher written the obvious way for this request universe."""
    if isinstance(rule, Not):
        return not reference(rule.inner, req)
    if isinstance(rule, And):
        return reference(rule.left, req) and reference(rule.right, req)
    if isinstance(rule, Or):
        return reference(rule.left, req) or reference(rule.right, req)
    return LEAVES[rule.name](req, *rule.args)


def _host(req: Req) -> str:
    return req.host.lower().split(":")[0]


def _path(req: Req) -> str:
    return unquote(req.path.replace("%2F", "%252F"))  # %2F stays encoded, other escapes are decoded


def _query(req: Req) -> dict[str, list[str]]:
    return parse_qs(req.query, keep_blank_values=True)


def _ip_in(req: Req, spec: str) -> bool:
    address = ipaddress.ip_address(req.client_ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    network = ipaddress.ip_network(spec)
    return address.version == network.version and address in network


LEAVES: dict[str, Callable[..., bool]] = {
    "Method": lambda req, m: req.method == m.upper(),
    "Host": lambda req, h: _host(req) != "" and _host(req).rstrip(".") == h.lower().rstrip("."),
    "Path": lambda req, p: _path(req) == p,
    "PathPrefix": lambda req, p: _path(req).startswith(p),
    "Header": lambda req, name, value: value in req.headers.get_all(name),
    "Query": lambda req, key, value="": value in _query(req).get(key, []),
    "ClientIP": _ip_in,
    "HostRegexp": lambda req, p: re.search(p, _host(req)) is not None,
    "PathRegexp": lambda req, p: re.search(p, _path(req)) is not None,
    "HeaderRegexp": lambda req, name, p: any(re.search(p, v) for v in req.headers.get_all(name)),
    "QueryRegexp": lambda req, key, p: any(re.search(p, v) for v in _query(req).get(key, [])),
}


@settings(max_examples=250, deadline=None)
@given(trees(http_leaves), st.lists(requests, min_size=1, max_size=8))
def test_compiled_http_matchers_agree_with_the_reference(rule: Rule, reqs: list[Req]) -> None:
    matcher = compile_http(rule)
    for req in reqs:
        assert matcher(req) == reference(rule, req), (to_text(rule), req)


@FAST
@given(http_leaves, http_leaves, st.lists(requests, min_size=1, max_size=8))
def test_de_morgan_and_double_negation(a: Rule, b: Rule, reqs: list[Req]) -> None:
    pairs: list[tuple[Rule, Rule]] = [
        (Not(And(a, b)), Or(Not(a), Not(b))),
        (Not(Or(a, b)), And(Not(a), Not(b))),
        (Not(Not(a)), a),
        (Or(a, b), Or(b, a)),
        (And(a, Or(a, b)), a),  # absorption
    ]
    for left, right in pairs:
        lhs, rhs = compile_http(left), compile_http(right)
        for req in reqs:
            assert lhs(req) == rhs(req), (to_text(left), to_text(right), req)


tcp_leaves = st.sampled_from(
    [
        Matcher("HostSNI", ("a.com",)),
        Matcher("HostSNI", ("*",)),
        Matcher("HostSNIRegexp", ("^a",)),
        Matcher("ALPN", ("h2",)),
        Matcher("ClientIP", ("10.0.0.0/8",)),
    ]
)
conns = st.builds(
    Conn,
    sni=st.sampled_from([None, "", "a.com", "A.com", "b.com"]),
    alpn=st.lists(st.sampled_from(["h2", "http/1.1"]), max_size=2).map(tuple),
    client_ip=st.sampled_from(["10.0.0.1", "192.168.0.1"]),
)
TCP_LEAVES: dict[str, Callable[..., bool]] = {
    "HostSNI": lambda c, h: h == "*" or (c.sni or "").lower() == h,
    "HostSNIRegexp": lambda c, p: re.search(p, (c.sni or "").lower()) is not None,
    "ALPN": lambda c, p: p in c.alpn,
    "ClientIP": lambda c, spec: ipaddress.ip_address(c.client_ip) in ipaddress.ip_network(spec),
}


def tcp_reference(rule: Rule, conn: Conn) -> bool:
    if isinstance(rule, Not):
        return not tcp_reference(rule.inner, conn)
    if isinstance(rule, And):
        return tcp_reference(rule.left, conn) and tcp_reference(rule.right, conn)
    if isinstance(rule, Or):
        return tcp_reference(rule.left, conn) or tcp_reference(rule.right, conn)
    return TCP_LEAVES[rule.name](conn, *rule.args)


@FAST
@given(trees(tcp_leaves), st.lists(conns, min_size=1, max_size=6))
def test_compiled_tcp_matchers_agree_with_the_reference(rule: Rule, cs: list[Conn]) -> None:
    matcher = compile_tcp(rule)
    for conn in cs:
        assert matcher(conn) == tcp_reference(rule, conn), (to_text(rule), conn)


# -- router order ----------------------------------------------------------------------------------------

DEFAULTS = {rule: default_priority(rule) for rule in ("Host(`a`)", "PathPrefix(`/`)", "HostSNI(`*`)")}
routers = st.dictionaries(
    st.text("abcXYZ-_0é", min_size=1, max_size=5),
    st.one_of(st.integers(-3, 40), st.sampled_from(sorted(DEFAULTS))),
    min_size=1,
    max_size=12,
)


@FAST
@given(routers.flatmap(lambda d: st.tuples(st.just(d), st.permutations(sorted(d.items())))))
def test_router_order_is_total_and_independent_of_declaration_order(
    case: tuple[dict[str, int | str], list[tuple[str, int | str]]],
) -> None:
    declared, shuffled = case
    entries = [(name, p if isinstance(p, int) else DEFAULTS[p]) for name, p in declared.items()]
    again = [(name, p if isinstance(p, int) else DEFAULTS[p]) for name, p in shuffled]
    ordered = sorted(entries, key=lambda e: sort_key(*e))
    assert sorted(again, key=lambda e: sort_key(*e)) == ordered
    keys = [sort_key(*e) for e in ordered]
    assert len(set(keys)) == len(keys)  # total: distinct routers never tie
    for (n1, p1), (n2, p2) in itertools.pairwise(ordered):
        assert p1 > p2 or (p1 == p2 and n1 < n2)


# -- Traefik v3.7 wildcards: `*.suffix` is one whole label in front of suffix, any case --------------------

labels = st.text(st.sampled_from("aBz0-_"), max_size=3)
names = st.lists(labels, max_size=4).map(".".join)
suffixes = st.lists(st.text(st.sampled_from("aBz0-_"), min_size=1, max_size=3), min_size=1, max_size=2).map(
    ".".join
)


def _one_label_before(name: str, suffix: str) -> bool:
    _, dot, rest = name.partition(".")
    return dot == "." and rest == suffix


@FAST
@given(suffixes, names, st.booleans(), st.booleans())
def test_host_wildcards_match_one_label(suffix: str, name: str, trailing_dot: bool, port: bool) -> None:
    parsed = parse_rule(f"Host(`*.{suffix}`)", "http")
    assert parsed.ast is not None and not parsed.problems
    request = Req(
        "GET", name + ("." if trailing_dot else "") + (":8080" if port else ""), "/", "", Fields(()), ""
    )
    host = (name + ("." if trailing_dot else "")).lower()  # what Traefik compares: no port, lower-cased
    candidates = {host, host.removesuffix(".")}  # and without one trailing dot
    expected = host != "" and any(_one_label_before(c, suffix.lower()) for c in candidates)
    assert compile_http(parsed.ast)(request) == expected, (request.host, suffix)


@FAST
@given(suffixes, names)
def test_host_sni_wildcards_match_one_label(suffix: str, name: str) -> None:
    parsed = parse_rule(f"HostSNI(`*.{suffix}`)", "tcp")
    assert parsed.ast is not None and not parsed.problems
    expected = name != "" and _one_label_before(
        name.lower(), suffix.lower()
    )  # the server name keeps its dots
    assert compile_tcp(parsed.ast)(Conn(name.upper(), (), "10.0.0.1")) == expected, (name, suffix)
