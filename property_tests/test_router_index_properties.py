"""The router index never changes which router takes a request (compiler/rules/index.py).

For random rule sets drawn from the rule grammar (Host with exact, wildcard, upper-case and
trailing-dot names, HostRegexp, Path, PathPrefix, PathRegexp, Method, Header, Query, ClientIP,
joined by `&&`, `||` and `!`, with random priorities) and random requests:

- every rule that matches a request is among the index's candidates, which come in priority
  order (the index only ever leaves out rules that cannot match);
- so the router table (runtime/router.py), which tries only the candidates, picks the same router
  as a linear scan in Traefik's priority order, on real `Request` objects;
- the same holds for TCP rules (HostSNI, HostSNIRegexp, ALPN, ClientIP) on the TLS server name.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from a3s_gateway.compiler.rules import (
    Matcher,
    Not,
    Or,
    Rule,
    RuleIndex,
    compile_http,
    compile_tcp,
    effective_priority,
    placements,
    sort_key,
    to_text,
)
from a3s_gateway.compiler.rules.index import MAX_PLACEMENTS
from a3s_gateway.runtime.api import Headers, Request, RouteInfo
from a3s_gateway.runtime.errors import BadRequest
from a3s_gateway.runtime.router import RouteMatch, RouterTable, compile_rule
from property_tests.rule_strategies import leaf, trees
from tests.rule_inputs import Conn, Fields, Req

SETTINGS = settings(max_examples=300, deadline=None)

NAMES = [
    "a.com",
    "A.Com",
    "a.com.",
    "x.a.com",
    "b.a.com.",
    "b.com",
    "*.a.com",
    "*.A.com.",
    "*.com",
    "*",
    "*.",
]
PREFIXES = ["/", "/a", "/a/", "/ab", "/a/b", "/b", "/a%2Fb", "/a b", "/é"]


http_leaves: st.SearchStrategy[Rule] = st.one_of(
    leaf("Host", NAMES),
    leaf("Host", NAMES),  # hosts and paths are what the index files by: draw them more often
    leaf("Path", PREFIXES),
    leaf("PathPrefix", PREFIXES),
    leaf("PathPrefix", PREFIXES),
    leaf("HostRegexp", ["^a", r"\.com$", "^x\\."]),
    leaf("PathRegexp", ["b$", "^/a"]),
    leaf("Method", ["GET", "post"]),
    st.sampled_from([Matcher("Header", ("X", "1")), Matcher("Query", ("q",)), Matcher("Query", ("q", "1"))]),
    leaf("ClientIP", ["10.0.0.0/8", "::1"]),
)

HOSTS = [
    "a.com",
    "A.COM:8080",
    "a.com.",
    "a.com..",
    "x.a.com",
    "X.A.com.:443",
    "y.x.a.com",
    "b.com",
    "com",
    "",
]
HOSTS += [" a.com ", "[::1]:80", "b.a.com", "a"]
requests = st.builds(
    Req,
    method=st.sampled_from(["GET", "POST"]),
    host=st.sampled_from(HOSTS),
    path=st.sampled_from(
        ["/", "/a", "/ab", "/a/", "/a/b", "/a%2Fb", "/a%2fb", "/a%20b", "/b", "/a%zz", "/%C3%A9", ""]
    ),
    query=st.sampled_from(["", "q", "q=1"]),
    headers=st.sampled_from([Fields(), Fields((("X", "1"),))]),
    client_ip=st.sampled_from(["10.0.0.1", "::1", "192.168.0.1"]),
)


def _check_candidates(rules: list[Rule], matchers: list[Any], inputs: list[Any], candidates: Any) -> None:
    """Every rule that matches an input is a candidate; candidates are in order, so the first
    candidate that matches is the first rule that matches."""
    for item in inputs:
        found = list(candidates(item))
        assert found == sorted(set(found))
        matching = [i for i, m in enumerate(matchers) if m(item)]
        assert set(matching) <= set(found), ([to_text(rules[i]) for i in matching], item)
        first = next((i for i in found if matchers[i](item)), None)
        assert first == (matching[0] if matching else None)


@SETTINGS
@given(st.lists(trees(http_leaves), min_size=1, max_size=12), st.lists(requests, min_size=1, max_size=10))
def test_every_matching_http_rule_is_a_candidate_in_order(rules: list[Rule], reqs: list[Req]) -> None:
    index = RuleIndex(placements(rule, "http") for rule in rules)
    _check_candidates(rules, [compile_http(rule) for rule in rules], reqs, index.http_candidates)


def _request(req: Req) -> Request:
    target = req.path + ("?" + req.query if req.query else "")
    headers = Headers.from_pairs([("host", req.host), *req.headers.pairs] if req.host else req.headers.pairs)
    return Request(req.method, target or "/", headers, client_ip=req.client_ip)


@SETTINGS
@given(
    st.lists(st.tuples(trees(http_leaves), st.sampled_from([0, 0, 1, 5, 40, 100])), min_size=1, max_size=12),
    st.lists(requests, min_size=1, max_size=10),
)
def test_the_router_table_picks_the_router_a_linear_scan_picks(
    routers: list[tuple[Rule, int]], reqs: list[Req]
) -> None:
    entries = []
    for n, (rule, priority) in enumerate(routers):
        text = to_text(rule)
        info = RouteInfo("web", f"r{n}", "svc")
        entries.append((text, RouteMatch(info, _no_handler, effective_priority(text, priority))))
    table = RouterTable("web", [(compile_rule(text), match) for text, match in entries])
    ordered = sorted(entries, key=lambda e: sort_key(e[1].info.router, e[1].priority))
    assert table.routers == [m.info.router for _, m in ordered]
    for req in reqs:
        request = _request(req)
        try:
            chosen = table.route(request)  # normalises the target first (compiler/request_target.py)
        except BadRequest:
            continue  # refused before any router is tried
        expected = next((m for text, m in ordered if compile_rule(text).matches(request)), None)
        assert chosen is expected, (req, chosen and chosen.info.router, expected and expected.info.router)


async def _no_handler(request: Request) -> object:
    raise AssertionError("never called")


SNI = ["a.com", "A.com.", "x.a.com", "*.a.com", "*.a.com.", "*", "b.com"]
tcp_leaves: st.SearchStrategy[Rule] = st.one_of(
    leaf("HostSNI", SNI),
    leaf("HostSNI", SNI),
    leaf("HostSNIRegexp", ["^a", r"\.com$"]),
    leaf("ALPN", ["h2", "http/1.1"]),
    leaf("ClientIP", ["10.0.0.0/8"]),
)
connections = st.builds(
    Conn,
    sni=st.sampled_from(
        [None, "", "a.com", "A.COM", "a.com.", "x.a.com", "x.a.com.", "y.x.a.com", " b.com", "com"]
    ),
    alpn=st.sampled_from([(), ("h2",), ("http/1.1", "h2")]),
    client_ip=st.sampled_from(["10.0.0.1", "192.168.0.1"]),
)


@SETTINGS
@given(st.lists(trees(tcp_leaves), min_size=1, max_size=12), st.lists(connections, min_size=1, max_size=10))
def test_every_matching_tcp_rule_is_a_candidate_in_order(rules: list[Rule], conns: list[Conn]) -> None:
    index = RuleIndex(placements(rule, "tcp") for rule in rules)
    _check_candidates(rules, [compile_tcp(rule) for rule in rules], conns, index.tcp_candidates)


def test_a_rule_with_too_many_placements_is_tried_on_every_request() -> None:
    hosts: Rule = Matcher("Host", ("h0.com",))
    for n in range(1, MAX_PLACEMENTS):
        hosts = Or(hosts, Matcher("Host", (f"h{n}.com",)))
    assert placements(hosts, "http") == placements(Not(hosts), "http")  # filed under "anywhere"
    index = RuleIndex([placements(hosts, "http")])
    assert index.candidates("elsewhere.org", "/") == [0]
    assert index.statistics()["unindexed"] == 1
