"""HTTP matchers, against the cases of Traefik's own tests.

Ported from traefik/traefik pkg/muxer/http/matcher_test.go (v3), the v3-valid cases of
mux_test.go, and requestdecorator's host tests. Each table maps a URL (as Go's
httptest.NewRequest would build the request from it) to whether the rule matches.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from a3s_gateway.compiler.rules import HttpMatchInput, RuleCompileError, compile_http, parse_rule
from a3s_gateway.compiler.rules._inputs import canonical_host, routing_path

from .rule_inputs import Fields, Req


def from_url(url: str, **kw: object) -> Req:
    parts = urlsplit(url)
    return Req(host=parts.netloc, path=parts.path, query=parts.query, **kw)  # type: ignore[arg-type]


def matches(rule: str, request: HttpMatchInput) -> bool:
    parsed = parse_rule(rule, "http")
    assert parsed.ast is not None and not parsed.problems, parsed.problems
    return compile_http(parsed.ast)(request)


def check_urls(rule: str, expected: dict[str, bool]) -> None:
    assert {url: matches(rule, from_url(url)) for url in expected} == expected


# -- ClientIP, Method --------------------------------------------------------------------------------


def test_client_ip() -> None:  # Traefik TestClientIPMatcher, mux_test ClientIP cases
    cases = {
        "ClientIP(`127.0.0.1`)": {"127.0.0.1": True, "192.168.1.1": False, "1": False},
        "ClientIP(`192.168.1.0/24`)": {"192.168.1.1": True, "192.168.1.100": True, "192.168.2.1": False},
        "ClientIP(`10::10`)": {"10::10": True, "::1": False},
        "ClientIP(`10.10.1.1`)": {"10.0.0.0": False},
        "ClientIP(`fe80::/10`)": {"fe80::1": True, "fe80::1%eth0": False, "10.0.0.1": False},
        # Go's IPNet.Contains: IPv4-mapped IPv6 is the IPv4 address, both ways.
        "ClientIP(`::ffff:1.2.3.4`)": {"1.2.3.4": True, "::ffff:1.2.3.4": True},
        "ClientIP(`1.2.3.0/24`)": {"::ffff:1.2.3.9": True, "1.2.4.1": False},
        "ClientIP(`::ffff:1.2.3.0/120`)": {"1.2.3.9": True, "1.2.4.9": False},
        "ClientIP(`::/0`)": {"1.2.3.4": False, "2001:db8::1": True},
        "ClientIP(`0.0.0.0/0`)": {"1.2.3.4": True, "2001:db8::1": False, "": False},
    }
    for rule, by_ip in cases.items():
        assert {ip: matches(rule, Req(client_ip=ip)) for ip in by_ip} == by_ip, rule


def test_method_is_upper_cased_in_the_rule_only() -> None:  # Traefik TestMethodMatcher
    for rule in ("Method(`GET`)", "Method(`get`)"):
        assert matches(rule, Req(method="GET"))
        assert not matches(rule, Req(method="POST"))
        assert not matches(rule, Req(method="get"))


# -- Host, HostRegexp ----------------------------------------------------------------------------------


def test_host() -> None:  # Traefik TestHostMatcher "valid Host matcher"
    check_urls(
        "Host(`example.com`)",
        {
            "https://example.com": True,
            "https://example.com:8080": True,
            "https://example.com/path": True,
            "https://EXAMPLE.COM/path": True,
            "https://example.org": False,
            "https://example.org/path": False,
        },
    )


def test_host_trailing_dots() -> None:  # Traefik "matcher ending with a dot", "URL ending with a dot"
    check_urls(
        "Host(`example.com.`)",
        {
            "https://example.com": True,
            "https://example.com/path": True,
            "https://example.org": False,
            "https://example.com.": True,
            "https://example.com./path": True,
            "https://example.org.": False,
        },
    )
    check_urls(
        "Host(`example.com`)",
        {"https://example.com.": True, "https://example.com./path": True, "https://example.org.": False},
    )


def test_host_upper_case_rule_and_punycode() -> None:
    check_urls("Host(`EXAMPLE.COM`)", {"https://example.com": True, "https://example.org": False})
    check_urls(
        "Host(`xn--9t9h.com`)",
        {"https://xn--9t9h.com": True, "https://example.com": False, "https://🦭.com": False},
    )


def test_host_ip_literals() -> None:  # mux_test "Host IPv4", "Host IPv6"
    assert matches("Host(`127.0.0.1`)", Req(host="127.0.0.1:8080"))
    assert matches("Host(`10::10`)", Req(host="10::10"))
    assert matches("Host(`::1`)", Req(host="[::1]:8443"))
    assert not matches("Host(`a`)", Req(host=""))


def test_host_wildcard_matches_exactly_one_label() -> None:  # Traefik v3.7 DomainMatchHostExpression
    check_urls(
        "Host(`*.example.com`)",
        {
            "https://foo.example.com": True,
            "https://FOO.Example.COM/path": True,
            "https://foo.example.com:8443": True,
            "https://foo.example.com.": True,  # a trailing dot on the request is dropped
            "https://foo.bar.example.com": False,  # one label only
            "https://example.com": False,  # the apex is not a subdomain
            "https://fooexample.com": False,
            "https://foo.example.org": False,
        },
    )
    check_urls("Host(`*.EXAMPLE.com.`)", {"https://a.example.com": True, "https://a.example.com.": True})
    assert not matches("Host(`*.example.com`)", Req(host=""))


def test_host_star_matches_every_request() -> None:  # Traefik v3.7.7: Host(`*`), even without a Host
    for host in ("example.com", "a.b.c", "localhost:8080", "[::1]", ""):
        assert matches("Host(`*`)", Req(host=host))


def test_host_forms_that_never_match_compile_with_a_warning() -> None:
    for rule in ("Host(`**.example.com`)", "Host(`a.*.com`)", "Host(`example.com:80`)"):
        parsed = parse_rule(rule, "http")
        assert parsed.ok and [p.severity for p in parsed.problems] == ["warning"], rule
        assert parsed.ast is not None
        matcher = compile_http(parsed.ast)
        for host in ("a.example.com", "a.b.example.com", "example.com", "a.x.com", "example.com:80"):
            assert not matcher(Req(host=host)), (rule, host)


def test_canonical_host_is_requestdecorator_parse_host() -> None:  # Traefik Test_parseHost
    cases = {
        "host": "host",
        "host:": "host",
        "127.0.0.1:123": "127.0.0.1",
        "127.0.0.1:": "127.0.0.1",
        "fe80::215:5dff:fe20:cd6a": "fe80::215:5dff:fe20:cd6a",
        "[fe80::215:5dff:fe20:cd6a]:123": "fe80::215:5dff:fe20:cd6a",
        "[fe80::215:5dff:fe20:cd6a]:": "fe80::215:5dff:fe20:cd6a",
        "[fe80::215:5dff:fe20:cd6a]": "fe80::215:5dff:fe20:cd6a",
        "fe80::215:5dff:fe20:cd6a]": "fe80::215:5dff:fe20:cd6a]",
        "[fe80::215:5dff:fe20:cd6a": "[fe80::215:5dff:fe20:cd6a",
        "": "",
        ":": "",
        " Example.COM ": "example.com",
    }
    assert {raw: canonical_host(raw) for raw in cases} == cases


def test_host_regexp() -> None:  # Traefik TestHostRegexpMatcher
    check_urls(
        r"HostRegexp(`^[a-zA-Z-]+\.com$`)",
        {
            "https://example.com": True,
            "https://example.com:8080": True,
            "https://example.com/path": True,
            "https://example.org": False,
            "https://example.org/path": False,
        },
    )
    # The host is lower-cased before matching, so an upper-case-only pattern never matches.
    check_urls(r"HostRegexp(`^[A-Z]+\.com$`)", {"https://example.com": False, "https://EXAMPLE.com": False})
    check_urls(
        r"HostRegexp(`(?i)^example\.(com|org)$`)", {"https://EXAMPLE.org": True, "https://x.net": False}
    )


def test_host_regexp_is_unanchored_unless_the_pattern_anchors() -> None:
    assert matches(r"HostRegexp(`example`)", Req(host="www.example.com"))
    assert not matches(r"HostRegexp(`^example`)", Req(host="www.example.com"))
    assert matches(r"HostRegexp(`^.+\.example\.com$`)", Req(host="a.b.example.com"))
    assert not matches(r"HostRegexp(`^.+\.example\.com$`)", Req(host="example.com"))


# -- Path, PathPrefix, PathRegexp ------------------------------------------------------------------------


def test_path() -> None:  # Traefik TestPathMatcher
    check_urls(
        "Path(`/css`)",
        {
            "https://example.com": False,
            "https://example.com/html": False,
            "https://example.org/css": True,
            "https://example.com/css": True,
            "https://example.com/css/": False,
            "https://example.com/css/main.css": False,
        },
    )


def test_path_prefix_is_a_plain_string_prefix() -> None:  # Traefik TestPathPrefixMatcher
    check_urls(
        'PathPrefix("/css")',
        {
            "https://example.com": False,
            "https://example.com/html": False,
            "https://example.org/css": True,
            "https://example.com/css": True,
            "https://example.com/css/": True,
            "https://example.com/css/main.css": True,
        },
    )
    assert matches("PathPrefix(`/products`)", Req(path="/products-for-sale"))  # Traefik docs


def test_path_regexp() -> None:  # Traefik TestPathRegexpMatcher
    check_urls(
        "PathRegexp(`^/(css|js)`)",
        {
            "https://example.com": False,
            "https://example.com/html": False,
            "https://example.org/css": True,
            "https://example.com/CSS": False,
            "https://example.com/css": True,
            "https://example.com/css/": True,
            "https://example.com/css/main.css": True,
            "https://example.com/js": True,
            "https://example.com/js/main.js": True,
        },
    )
    assert matches(r"PathRegexp(`\.(jpeg|jpg|png)$`)", Req(path="/img/a.png"))  # Traefik docs
    assert matches("PathRegexp(`(?i)^/products`)", Req(path="/PRODUCTS/shoes"))
    assert not matches("PathRegexp(`^/a$`)", Req(path="/a%0A"))  # Go's $ is the end of the text


@pytest.mark.parametrize(
    ("raw", "routed"),
    [
        ("/foo%20bar", "/foo bar"),  # Traefik's own example: PathPrefix(`/foo bar`) matches /foo%20bar
        ("/a%2Fb", "/a%2Fb"),  # reserved characters stay encoded...
        ("/a%3Ab%40c%25d", "/a%3Ab%40c%25d"),
        ("/a%2fb", "/a/b"),  # ...as written: Traefik's table only has the upper-case forms
        ("/caf%C3%A9", "/café"),
        ("/%7Bpath:css%7D", "/{path:css}"),
        ("/{path:css}", "/{path:css}"),
        ("/a(b)", "/a(b)"),  # a valid encoding is used as sent
        ("/a(b){c}", "/a%28b%29{c}"),  # else Go re-escapes the decoded path first
        ("/a%zz", None),  # Go answers 400 before routing
        ("/a%4", None),
        ("", ""),
    ],
)
def test_routing_path(raw: str, routed: str | None) -> None:
    assert routing_path(raw) == routed


def test_path_matchers_see_the_routing_path() -> None:
    assert matches("PathPrefix(`/foo bar`)", Req(path="/foo%20bar"))
    assert matches("Path(`/a%2Fb`)", Req(path="/a%2Fb"))
    assert not matches("Path(`/a/b`)", Req(path="/a%2Fb"))
    assert matches("Path(`/a/b`)", Req(path="/a%2fb"))
    assert not matches("PathPrefix(`/`)", Req(path="/a%zz"))
    assert not matches("PathRegexp(`.*`)", Req(path="/a%zz"))
    assert matches("!Path(`/x`)", Req(path="/a%zz"))


def test_v2_templates_in_regexps_compile_with_a_warning_and_match_literally() -> None:
    # Traefik "... with Traefik v2 syntax": v3 reads the braces as literal text, and runs the rule.
    cases = {
        'PathRegexp("/{path:(css|js)}")': (Req(path="/{path:css}/"), Req(path="/css")),
        "PathRegexp(`/{path:(css|js)}`)": (Req(path="/%7Bpath:js%7D"), Req(path="/js")),
        "HeaderRegexp(`X-Forwarded-Proto`, `http{secure:s?}`)": (
            Req(headers=Fields((("X-Forwarded-Proto", "http{secure:s}"),))),
            Req(headers=Fields((("X-Forwarded-Proto", "https"),))),
        ),
        "QueryRegexp(`q`, `{value:(traefik|nginx)}`)": (
            Req(query="q={value:traefik}"),
            Req(query="q=traefik"),
        ),
        "HostRegexp(`{domain:[a-zA-Z-]+\\.com}`)": (None, Req(host="example.com")),
    }
    for rule, (hit, miss) in cases.items():
        parsed = parse_rule(rule, "http")
        assert parsed.ok and parsed.ast is not None, rule
        [warning] = parsed.problems
        assert warning.severity == "warning" and "braces are literal text" in warning.message
        assert warning.hint is not None and warning.hint.startswith("write ")
        matcher = compile_http(parsed.ast)
        assert hit is None or matcher(hit), rule
        assert not matcher(miss), rule


# -- Header, HeaderRegexp ----------------------------------------------------------------------------------


def fields(*pairs: tuple[str, str]) -> Req:
    return Req(headers=Fields(pairs))


def test_header_multi_values_and_case() -> None:  # Traefik TestHeaderMatcher
    for rule in ("Header(`X-Forwarded-Proto`, `https`)", "Header(`x-forwarded-proto`, `https`)"):
        assert matches(rule, fields(("X-Forwarded-Proto", "https")))
        assert matches(rule, fields(("x-forwarded-proto", "https")))  # our header maps are case-insensitive
        assert matches(rule, fields(("X-Forwarded-Proto", "http"), ("X-Forwarded-Proto", "https")))
        assert matches(rule, fields(("X-Forwarded-Proto", "https"), ("X-Forwarded-Proto", "http")))
        assert not matches(rule, fields(("X-Forwarded-Host", "example.com")))
        assert not matches(rule, fields(("X-Forwarded-Proto", "HTTPS")))
        assert not matches(rule, fields(("X-Forwarded-Proto", "http, https")))  # one field line, one value


def test_header_regexp() -> None:  # Traefik TestHeaderRegexpMatcher
    rule = "HeaderRegexp(`X-Forwarded-Proto`, `^https?$`)"
    assert matches(rule, fields(("X-Forwarded-Proto", "http")))
    assert matches(rule, fields(("X-Forwarded-Proto", "https")))
    assert not matches(rule, fields(("X-Forwarded-Proto", "HTTPS")))
    assert matches(rule, fields(("X-Forwarded-Proto", "ws"), ("X-Forwarded-Proto", "https")))
    assert not matches(rule, fields(("X-Forwarded-Host", "example.com")))
    assert matches(
        "HeaderRegexp(`Content-Type`, `(?i)^application/(json|yaml)$`)",
        fields(("content-type", "APPLICATION/JSON")),
    )


def test_header_values_are_compared_as_sent_bytes() -> None:
    # A runtime that decodes field values as latin-1 still matches a UTF-8 rule value.
    assert matches("Header(`X-Name`, `é`)", fields(("X-Name", "é".encode().decode("latin-1"))))
    assert matches("Header(`X-Name`, `é`)", fields(("X-Name", "é")))


def test_headers_alias() -> None:  # mux_test "Header with matching header"
    assert matches("Headers(`Content-Type`,`application/json`)", fields(("Content-Type", "application/json")))
    assert not matches(
        "Headers(`Content-Type`,`application/foo`)", fields(("Content-Type", "application/json"))
    )


# -- Query, QueryRegexp ----------------------------------------------------------------------------------


def test_query() -> None:  # Traefik TestQueryMatcher
    check_urls(
        "Query(`q`, `traefik`)",
        {
            "https://example.com": False,
            "https://example.com?q=traefik": True,
            "https://example.com?rel=ddg&q=traefik": True,
            "https://example.com?q=traefik&q=proxy": True,
            "https://example.com?q=awesome&q=traefik": True,
            "https://example.com?q=nginx": False,
            "https://example.com?rel=ddg": False,
            "https://example.com?q=TRAEFIK": False,
            "https://example.com?Q=traefik": False,
            "https://example.com?rel=traefik": False,
        },
    )


def test_query_with_one_argument_wants_an_empty_value() -> (
    None
):  # Traefik "valid Query matcher with empty value"
    check_urls(
        "Query(`mobile`)",
        {
            "https://example.com": False,
            "https://example.com?mobile": True,
            "https://example.com?mobile=": True,
            "https://example.com?mobile=true": False,
            "https://example.com?mobile=true&mobile": True,
        },
    )
    assert matches("QueryRegexp(`mobile`)", Req(query="mobile"))


def test_query_is_decoded_as_go_parse_query() -> None:
    assert matches("Query(`a b`, `c+d`)", Req(query="a+b=c%2Bd"))
    assert not matches("Query(`a`, `1`)", Req(query="a=1;b=2"))  # Go drops pairs with ';'
    assert matches("Query(`b`, `2`)", Req(query="a=%zz&b=2"))  # and pairs with bad escapes, not the rest
    assert not matches("Query(`a`)", Req(query="a=%zz"))


def test_query_regexp() -> None:  # Traefik TestQueryRegexpMatcher
    check_urls(
        "QueryRegexp(`q`, `^(traefik|nginx)$`)",
        {
            "https://example.com": False,
            "https://example.com?q=traefik": True,
            "https://example.com?rel=ddg&q=traefik": True,
            "https://example.com?q=traefik&q=proxy": True,
            "https://example.com?q=awesome&q=traefik": True,
            "https://example.com?q=TRAEFIK": False,
            "https://example.com?Q=traefik": False,
            "https://example.com?rel=traefik": False,
            "https://example.com?q=nginx": True,
            "https://example.com?q=NGINX": False,
            "https://example.com?q=haproxy": False,
            "https://example.com?rel=ddg": False,
        },
    )
    check_urls(
        "QueryRegexp(`q`, `^.*$`)",
        {
            "https://example.com": False,
            "https://example.com?q=TRAEFIK": True,
            "https://example.com?q=": True,
            "https://example.com?Q=traefik": False,
            "https://example.com?rel=nginx": False,
        },
    )


# -- combinations (mux_test.go) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            'Path("/a") && Host("plop")',
            {"http://plop/a": True, "http://plopi/a": False},
        ),
        (
            'Host("tchouk") || Host("pouet")',
            {"http://tchouk/toto": True, "http://pouet/a": True, "http://plopi/a": False},
        ),
        (
            'Host("tchouk") || (Host("pouet") && Path("/powpow"))',
            {
                "http://tchouk/toto": True,
                "http://tchouk/powpow": True,
                "http://pouet/powpow": True,
                "http://pouet/toto": False,
                "http://plopi/a": False,
            },
        ),
        (
            'Host("tchouk") || Host("pouet") && Path("/powpow")',
            {
                "http://tchouk/toto": True,
                "http://tchouk/powpow": True,
                "http://pouet/powpow": True,
                "http://pouet/toto": False,
                "http://plopi/a": False,
            },
        ),
        (
            '(Host("tchouk") || Host("pouet")) && Path("/powpow")',
            {
                "http://tchouk/toto": False,
                "http://tchouk/powpow": True,
                "http://pouet/powpow": True,
                "http://pouet/toto": False,
                "http://plopi/a": False,
            },
        ),
        (
            '(Host("tchouk") && Path("/titi")) || ((Host("pouet")) && Path("/powpow"))',
            {
                "http://tchouk/titi": True,
                "http://tchouk/powpow": False,
                "http://pouet/powpow": True,
                "http://pouet/toto": False,
                "http://plopi/a": False,
            },
        ),
        (
            '(HOST("tchouk") && PATHPREFIX("/titi"))',
            {"http://tchouk/titi": True, "http://tchouk/powpow": False},
        ),
        (
            '(host("tchouk") && pathprefix("/titi"))',
            {"http://tchouk/titi": True, "http://tchouk/powpow": False},
        ),
        (
            '(Host("tchouk") && Pathprefix("/titi"))',
            {"http://tchouk/titi": True, "http://tchouk/powpow": False},
        ),
        ('!Host("tchouk")', {"http://tchouk/titi": False, "http://test/powpow": True}),
        ('!Path("/titi")', {"http://tchouk/titi": False, "http://tchouk/powpow": True}),
        (
            '!(Host("tchouk") || Host("toto"))',
            {"http://tchouk/titi": False, "http://toto/powpow": False, "http://test/powpow": True},
        ),
        (
            '!(Host("tchouk") && Path("/titi"))',
            {"http://tchouk/titi": False, "http://tchouk/toto": True, "http://test/titi": True},
        ),
        (
            '!(Host("tchouk") && !Path("/titi"))',
            {"http://tchouk/titi": True, "http://toto/titi": True, "http://tchouk/toto": False},
        ),
        (
            '!Host("tchouk") || !Path("/titi")',
            {"http://tchouk/titi": False, "http://tchouk/toto": True, "http://test/titi": True},
        ),
        (
            '!(!(Host("tchouk") && Pathprefix("/titi")))',
            {"http://tchouk/titi": True, "http://tchouk/powpow": False, "http://test/titi": False},
        ),
        (
            '!Host("tchouk") && Pathprefix("/titi")',
            {
                "http://tchouk/titi": False,
                "http://tchouk/powpow": False,
                "http://toto/powpow": False,
                "http://toto/titi": True,
            },
        ),
        ("Host(`localhost.`)", {"http://localhost/foo": True, "http://localhost./foo": True}),
        ("Host(`localhost`)", {"http://localhost./foo": True}),
    ],
)
def test_combinations(rule: str, expected: dict[str, bool]) -> None:
    check_urls(rule, expected)


def test_long_chains_compile_and_short_circuit() -> None:
    rule = " || ".join(f"Host(`h{i}.example.com`)" for i in range(1500))
    assert matches(rule, Req(host="h1499.example.com"))
    assert not matches(rule, Req(host="nope.example.com"))
    chain = " && ".join(["PathPrefix(`/`)"] * 500 + ["Method(`GET`)"])
    assert matches(chain, Req()) and not matches(chain, Req(method="PUT"))


def test_compiling_a_rule_with_problems_raises() -> None:
    parsed = parse_rule("ClientIP(`nope`)", "http")
    assert parsed.ast is not None
    with pytest.raises(RuleCompileError, match="is not an IP address"):
        compile_http(parsed.ast)


# -- Go regexp semantics (Traefik compiles every *Regexp argument with Go's regexp) ----------------------


def header(rule_pattern: str, value: str) -> bool:
    return matches(f"HeaderRegexp(`X`, `{rule_pattern}`)", fields(("X", value)))


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("^a$", "a\n", False),  # Go's $ is the end of the text; Python's also matches before a final \n
        ("(?m)^a$", "a\nb", True),
        (r"^\d+$", "١٢", False),  # \d, \w, \s are ASCII in Go
        (r"^\w+$", "é", False),
        (r"^\s$", "\v", False),  # Go's \s has no \v
        (r"^\s$", "\t", True),
        (r"\bé", "aé", True),  # \b is an ASCII word boundary: é is not a word character
        ("^a{,3}$", "a{,3}", True),  # not a repeat in Go: literal braces
        ("^a{2}$", "aa", True),
        ("a(?i)b|c", "C", True),  # (?i) lasts to the end of the group, across |
        ("a(?i)b|c", "aB", True),
        ("a(?i)b|c", "AB", False),
        ("(?i:a)b", "Ab", True),
        ("(?i:a)b", "AB", False),
        ("^(?s).$", "\n", True),
        ("^.$", "\n", False),
        (r"^\Qa.b\E$", "a.b", True),
        (r"^\Qa.b\E$", "axb", False),
        (r"^\x41\x{42}\103$", "ABC", True),
        ("^[[:alpha:]]+$", "abcXYZ", True),
        ("^[[:^alpha:]]+$", "123", True),
        ("(?i)^[[:^lower:]]$", "a", False),  # Go folds, then negates
        ("(?i)^k$", "\u212a", True),  # Go's case folding includes the Kelvin sign
        ("(?U)^(a+)", "aaa", True),
        ("^(?P<n>x)(?<m>y)$", "xy", True),
        (r"^[\d-z]+$", "1-z", True),  # Go reads '-' after a class as a literal
        (r"^\z", "", True),
        ("^[^a]$", "\n", True),  # negated classes match newlines in Go
        ("^a*(?i)*$", "aaa", True),  # Go repeats a repetition when flags stand between them
        ("^*a", "a", True),  # and repeats assertions
    ],
)
def test_go_regexp_semantics(pattern: str, value: str, expected: bool) -> None:
    assert header(pattern, value) is expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("(?=a)", "invalid or unsupported Perl syntax: `(?=`"),
        ("(?<!a)", "invalid named capture: `(?<!a)`"),
        ("a**", "invalid nested repetition operator: `*`"),
        ("a*+", "invalid nested repetition operator: `+`"),
        (r"(a)\1", r"invalid escape sequence: `\1`"),
        (r"a\Z", r"invalid escape sequence: `\Z`"),
        (r"\C", r"invalid escape sequence: `\C`"),
        ("a{1001}", "invalid repeat count: `{1001}`"),
        ("(a{100}){20}", "invalid repeat count: `{20}`"),
        ("*a", "missing argument to repetition operator: `*`"),
        ("a)", "unexpected )"),
        ("[z-a]", "invalid character class range: `z-a`"),
        ("[[:word2:]]", "invalid character class range: `[:word2:]`"),
        (r"\pL", r"Unicode classes such as `\p...` are not supported; write the range out"),
        ("a\\", "trailing backslash at end of expression"),
    ],
)
def test_regexps_go_rejects_are_rejected(pattern: str, message: str) -> None:
    problems = parse_rule(f"PathRegexp(`{pattern}`)", "http").problems
    assert [p.message for p in problems] == [f"PathRegexp: invalid regexp: {message}"]
