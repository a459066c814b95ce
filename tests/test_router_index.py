"""The router index (compiler/rules/index.py) as the router table uses it: a request is tried
against the few routers its host and path could match, never against all of them."""

from __future__ import annotations

from a3s_gateway.compiler.rules import RuleIndex, parse_rule, placements
from a3s_gateway.runtime.api import Headers, Request
from benchmarks.routers_hcl import request_for, router_table


def _index(*rules: str) -> RuleIndex:
    return RuleIndex(placements(parse_rule(r, "http").ast, "http") for r in rules)  # type: ignore[arg-type]


def test_a_fleet_of_routers_is_filed_by_host_and_path() -> None:
    table = router_table(2_000)
    # 750 names, each also spelt with a trailing dot; no rule is tried on every request.
    assert table.statistics() == {"exact_hosts": 1_500, "wildcard_hosts": 0, "unindexed": 0}
    last = table.routers[-1]
    host, path = request_for(int(last[1:]))
    match = table.route(Request("GET", path, Headers.from_pairs([("host", host)])))
    assert match is not None and match.info.router == last
    assert table.route(Request("GET", "/nothing", Headers.from_pairs([("host", "nowhere.example")]))) is None


def test_candidates_are_the_routers_a_request_could_match_in_priority_order() -> None:
    index = _index(
        "Host(`a.com`) && PathPrefix(`/api`)",  # 0
        "Host(`A.com.`)",  # 1: case and trailing dot as the matcher compares them
        "Host(`*.a.com`) && Path(`/x`)",  # 2
        "PathPrefix(`/api/v1`)",  # 3
        "Host(`a.com`) && Host(`b.com`)",  # 4: can match nothing
        "Method(`GET`)",  # 5: not indexable, tried on every request
        "!Host(`a.com`)",  # 6: idem
        "Host(`b.com`) || PathPrefix(`/api`)",  # 7
    )
    assert list(index.candidates("a.com", "/api/v1/x")) == [0, 1, 3, 5, 6, 7]
    assert list(index.candidates("a.com.", "/")) == [1, 5, 6]
    assert list(index.candidates("x.a.com", "/x")) == [2, 5, 6]
    assert list(index.candidates("x.a.com.", "/x")) == [2, 5, 6]  # the wildcard retries without the dot
    assert list(index.candidates("b.com", None)) == [5, 6, 7]  # no routing path: no path rule
    assert list(index.candidates("c.org", "/apix")) == [5, 6, 7]
