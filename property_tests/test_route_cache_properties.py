"""The route cache never changes a routing decision (runtime/router.py, "The route cache").

For random router sets drawn from the rule grammar (the matchers the cache keys on: Host,
HostRegexp, Path, PathPrefix, PathRegexp, Method; and, in a second test, Header, Query and
ClientIP, which turn the cache off) and random request sequences, a table with the cache and a
table without it give every request the same outcome: the same router (or none), the same
normal form of the target, the same 400. The cached table is built with a tiny cache, and the
sequences repeat requests and mix in many distinct paths, so decisions are taken from the cache,
evicted and taken again.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from a3s_gateway.compiler.request_target import PathPolicy
from a3s_gateway.compiler.rules import Matcher, Rule, effective_priority, to_text
from a3s_gateway.runtime import router
from a3s_gateway.runtime.api import Headers, Request, Response, RouteInfo
from a3s_gateway.runtime.errors import BadRequest
from a3s_gateway.runtime.router import RouteMatch, RouterTable, compile_rule
from property_tests.rule_strategies import leaf, trees

SETTINGS = settings(max_examples=200, deadline=None)
NAMES = ["a.com", "A.Com", "a.com.", "x.a.com", "b.com", "*.a.com", "*"]
PREFIXES = ["/", "/a", "/a/", "/ab", "/a/b", "/b", "/a%2Fb", "/é"]


async def _no_handler(request: Request) -> Response:
    raise AssertionError("never called")


cached_leaves: st.SearchStrategy[Rule] = st.one_of(
    leaf("Host", NAMES),
    leaf("Path", PREFIXES),
    leaf("PathPrefix", PREFIXES),
    leaf("PathPrefix", PREFIXES),
    leaf("HostRegexp", ["^a", r"\.com$"]),
    leaf("PathRegexp", ["b$", "^/a"]),
    leaf("Method", ["GET", "post"]),
)
uncached_leaves: st.SearchStrategy[Rule] = st.one_of(
    cached_leaves,
    st.sampled_from([Matcher("Header", ("X", "1")), Matcher("Query", ("q",)), Matcher("ClientIP", ("::1",))]),
)

HOSTS = ["a.com", "A.COM:8080", "a.com.", "x.a.com", "b.com", "", "a.com:", "bad host", "[::1]:80"]
PATHS = ["/", "/a", "/ab", "/a/", "/a/b", "/a%2Fb", "/a%41b", "/a//b", "/a/./b", "/a/../b", "/b", "/%zz"]
PATHS += ["*", "/a#b", "/a\\b", "/é"]
requests = st.tuples(
    st.sampled_from(["GET", "POST", "OPTIONS"]),
    st.sampled_from(HOSTS),
    st.one_of(st.sampled_from(PATHS), st.integers(0, 50).map(lambda n: f"/a/{n}")),
    st.sampled_from(["", "?q", "?q=1", "?x=%2F"]),
    st.sampled_from([(), (("x", "1"),), (("host", "b.com"),)]),
    st.sampled_from(["10.0.0.1", "::1"]),
)
Req = tuple[str, str, str, str, tuple[tuple[str, str], ...], str]


def _request(req: Req) -> Request:
    method, host, path, query, more, client_ip = req
    pairs = [("host", host), *more] if host else list(more)
    return Request(method, path + query, Headers.from_pairs(pairs), client_ip=client_ip)


def _tables(
    routers: list[tuple[Rule, int]], policy: PathPolicy, size: int
) -> tuple[RouterTable, RouterTable]:
    entries = []
    for n, (rule, priority) in enumerate(routers):
        text = to_text(rule)
        info = RouteInfo("web", f"r{n}", "svc")
        entries.append(
            (compile_rule(text), RouteMatch(info, _no_handler, effective_priority(text, priority)))
        )
    return RouterTable("web", entries, policy, cache_size=size), RouterTable(
        "web", entries, policy, cache_size=0
    )


def _outcome(table: RouterTable, req: Req) -> tuple[str, str | None]:
    request = _request(req)
    try:
        match = table.route(request)
    except BadRequest as exc:
        return "400 " + exc.message, None
    return request.target, match.info.router if match is not None else None


policies = st.sampled_from([PathPolicy(), PathPolicy(frozenset(), sanitize=False)])
routers = st.lists(st.tuples(trees(cached_leaves), st.sampled_from([0, 1, 40])), min_size=1, max_size=8)


@SETTINGS
@given(routers, policies, st.integers(1, 4), st.lists(requests, min_size=1, max_size=40))
def test_a_cached_decision_is_the_uncached_one(
    routes: list[tuple[Rule, int]], policy: PathPolicy, size: int, reqs: list[Req]
) -> None:
    cached, uncached = _tables(routes, policy, size)
    assert cached._cache is not None  # these rules read only host, path and method
    for req in [*reqs, *reqs]:  # the second pass finds some decisions cached, others evicted
        assert _outcome(cached, req) == _outcome(uncached, req), req
        assert len(cached._cache) <= size


@SETTINGS
@given(
    st.lists(st.tuples(trees(uncached_leaves), st.just(0)), min_size=1, max_size=8),
    st.lists(requests, min_size=1, max_size=20),
)
def test_rules_that_read_more_than_host_path_and_method_turn_the_cache_off(
    routes: list[tuple[Rule, int]], reqs: list[Req]
) -> None:
    cached, uncached = _tables(routes, PathPolicy(), 4)
    reads_more = any(
        leaf in to_text(rule) for rule, _ in routes for leaf in ("Header(", "Query(", "ClientIP(")
    )
    assert (cached._cache is None) == reads_more
    for req in [*reqs, *reqs]:
        assert _outcome(cached, req) == _outcome(uncached, req), req


def test_many_distinct_paths_keep_the_cache_bounded_and_right() -> None:
    rules = ["PathPrefix(`/a`)", "Host(`a.com`) && PathPrefix(`/a/1`)", "Method(`POST`)"]
    entries = [
        (compile_rule(text), RouteMatch(RouteInfo("web", f"r{n}", "svc"), _no_handler, len(text)))
        for n, text in enumerate(rules)
    ]
    cached = RouterTable("web", entries, cache_size=8)
    uncached = RouterTable("web", entries, cache_size=0)
    for n in range(2000):
        req: Req = (
            "GET" if n % 3 else "POST",
            "a.com" if n % 2 else "b.com",
            f"/a/{n % 37}",
            "?n=1",
            (),
            "::1",
        )
        assert _outcome(cached, req) == _outcome(uncached, req)
    assert cached._cache is not None and len(cached._cache) == 8


def test_long_host_values_leave_the_cache_bounded_in_bytes() -> None:
    """A client picks its Host as freely as its path (up to the 32 KiB head): decisions for long
    ones are taken, right, and not kept, so the cache (and the Host check's memo) holds at most
    its size times a short key however large the values sent."""
    entries = [(compile_rule("PathPrefix(`/a`)"), RouteMatch(RouteInfo("web", "r", "svc"), _no_handler, 1))]
    cached = RouterTable("web", entries, cache_size=8)
    uncached = RouterTable("web", entries, cache_size=0)
    router._valid_host.cache_clear()
    for n in range(64):
        req: Req = ("GET", f"{n}.{'h' * 4096}.example", "/a/b", "", (), "::1")
        assert _outcome(cached, req) == _outcome(uncached, req) == ("/a/b", "r")
    assert cached._cache is not None
    assert sum(len(host) + len(path) for host, path in cached._cache) <= 8 * 1024
    assert router._valid_host.cache_info().currsize == 0
