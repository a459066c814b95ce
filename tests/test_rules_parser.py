"""The rule parser: Go-expression syntax, precedence, spellings, arity, every problem with its column.

Cases marked "Traefik" are ported from traefik/traefik pkg/rules/parser_test.go,
pkg/muxer/http/matcher_test.go, pkg/muxer/http/mux_test.go (v2 forms) and pkg/muxer/tcp/matcher_test.go.
"""

from __future__ import annotations

import pytest

from a3s_gateway.compiler.rules import (
    And,
    Kind,
    Matcher,
    Not,
    Or,
    RuleParse,
    RuleProblem,
    default_priority,
    effective_priority,
    is_catch_all,
    parse_rule,
    sort_key,
    to_text,
)

H: Kind = "http"


def m(name: str, *args: str) -> Matcher:
    return Matcher(name, args)


def only(parsed: RuleParse) -> RuleProblem:
    assert len(parsed.problems) == 1, parsed.problems
    return parsed.problems[0]


# -- syntax and structure -------------------------------------------------------------------------


def test_single_matcher_and_superfluous_parentheses() -> None:  # Traefik: "One value in rule"
    assert parse_rule("Host(`a`)", H).ast == m("Host", "a")
    assert parse_rule("((Host(`a`)))", H).ast == m("Host", "a")
    assert parse_rule("Host(`a`)", H).ok


def test_and_binds_tighter_than_or_and_both_are_left_associative() -> None:
    a, b, c = m("Host", "a"), m("Path", "/b"), m("Method", "C")
    assert parse_rule("Host(`a`) || Path(`/b`) && Method(`C`)", H).ast == Or(a, And(b, c))
    assert parse_rule("Host(`a`) && Path(`/b`) || Method(`C`)", H).ast == Or(And(a, b), c)
    assert parse_rule("Host(`a`) && Path(`/b`) && Method(`C`)", H).ast == And(And(a, b), c)
    assert parse_rule("Host(`a`) || Path(`/b`) || Method(`C`)", H).ast == Or(Or(a, b), c)
    assert parse_rule("(Host(`a`) || Path(`/b`)) && Method(`C`)", H).ast == And(Or(a, b), c)


def test_go_comments_between_tokens() -> None:  # go/scanner: comments separate tokens
    a, b = m("Host", "a"), m("Path", "/b")
    assert parse_rule("Host(`a`) /* api */ && Path(`/b`)", H).ast == And(a, b)
    assert parse_rule("/* lead */ Host(/* x */`a`/**/)&&Path(`/b`) // trailing", H).ast == And(a, b)
    assert parse_rule("Host(`a`) && // the path\n  Path(`/b`)", H).ast == And(a, b)
    assert parse_rule("Host(`a`) /* // */ && Path(`/b`)", H).ast == And(a, b)
    assert parse_rule("Host(`/* not a comment */`)", H).ast == m("Host", "/* not a comment */")


def test_a_comment_does_not_hide_a_line_break() -> None:  # a line break after `)` ends the expression
    for rule in ("Host(`a`) // c\n&& Path(`/b`)", "Host(`a`) /* one\ntwo */ && Path(`/b`)"):
        problem = only(parse_rule(rule, H))
        assert problem.message.startswith("syntax error: a line break here ends the rule"), rule


def test_unterminated_comment() -> None:
    assert only(parse_rule("Host(`a`) /* open", H)) == RuleProblem(
        11, "syntax error: comment not terminated", "close it with */"
    )


def test_not_binds_tightest() -> None:  # Traefik: "Not one value in rule", "Rule with not on two rule"
    a, b = m("Host", "a"), m("Path", "/b")
    assert parse_rule("!Host(`a`)", H).ast == Not(a)
    assert parse_rule("!Host(`a`) || !Path(`/b`)", H).ast == Or(Not(a), Not(b))
    assert parse_rule("!(Host(`a`) && Path(`/b`))", H).ast == Not(And(a, b))
    assert parse_rule("!!Host(`a`)", H).ast == Not(Not(a))
    assert parse_rule("!(!(Host(`a`)))", H).ast == Not(Not(a))


def test_backticks_and_double_quotes_and_go_escapes() -> None:
    assert parse_rule('Path("/a")', H).ast == m("Path", "/a")  # Traefik: "Rule with simple path"
    assert parse_rule(r'HostRegexp("^[a-z]+\\.com$")', H).ast == m("HostRegexp", r"^[a-z]+\.com$")
    assert parse_rule(r"HostRegexp(`^[a-z]+\.com$`)", H).ast == m("HostRegexp", r"^[a-z]+\.com$")
    assert parse_rule(r'Header("X", "a\tb\x41\u00e9\101")', H).ast == m("Header", "X", "a\tbAéA")
    assert parse_rule("Path(`/a\r\nb`)", H).ast == m("Path", "/a\nb")  # Go drops \r from raw strings


def test_whitespace_and_trailing_comma_as_in_go() -> None:
    ast = m("Header", "X", "y")
    assert parse_rule("  Header ( `X` ,\n `y` , )  ", H).ast == ast
    assert parse_rule("Host(`a`) &&\n  Path(`/`)", H).ok


def test_matcher_spellings_traefik_accepts() -> None:  # Traefik: "Rule case UPPER/lower/Title"
    for spelling in ("PathPrefix", "pathprefix", "PATHPREFIX", "Pathprefix"):
        assert parse_rule(f"{spelling}(`/a`)", H).ast == m("PathPrefix", "/a")
    assert parse_rule("clientip(`::1`)", H).ast == m("ClientIP", "::1")
    assert parse_rule("Hostsniregexp(`a`)", "tcp").ast == m("HostSNIRegexp", "a")
    assert parse_rule("alpn(`h2`)", "tcp").ast == m("ALPN", "h2")


def test_headers_is_the_a3s_spelling_of_header() -> None:
    parsed = parse_rule("Headers(`X-Api-Key`, `secret`) || HEADERS(`a`, `b`)", H)
    assert parsed.ast == Or(m("Header", "X-Api-Key", "secret"), m("Header", "a", "b"))
    assert parsed.ok


def test_matcher_columns_are_kept_but_not_compared() -> None:
    parsed = parse_rule("Host(`a`) &&   Path(`/`)", H)
    assert isinstance(parsed.ast, And)
    assert isinstance(parsed.ast.right, Matcher) and parsed.ast.right.col == 16
    assert parsed.ast == parse_rule("Host(`a`)&&Path(`/`)", H).ast


# -- syntax errors: one problem, with the column ----------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "col", "message", "hint"),
    [
        ("", 1, "empty rule", "e.g. PathPrefix(`/`)"),  # Traefik: "No rule"
        ("   ", 1, "empty rule", "e.g. PathPrefix(`/`)"),
        ("Host", 5, "syntax error: unexpected end of the rule; expected '('", None),  # Traefik: "m"
        (
            "Host(`a`) &&",
            13,
            "syntax error: unexpected end of the rule; expected '!' or '(' or a matcher",
            None,
        ),
        (
            "Host(`a`) ||",
            13,
            "syntax error: unexpected end of the rule; expected '!' or '(' or a matcher",
            None,
        ),
        ("Host(`a)", 6, "syntax error: unterminated string", "close it with `"),  # Traefik: missing back tick
        ('Host("a)', 6, "syntax error: unterminated string", 'close it with "'),
        (
            "Host(`a`))",
            10,
            "syntax error: unexpected ')'; expected '&&' or '||' or the end of the rule",
            None,
        ),
        ("(Host(`a`)", 11, "syntax error: unexpected end of the rule; expected '&&' or ')' or '||'", None),
        ("Host(a)", 6, "syntax error: unexpected 'a'; expected ')' or a string", "quote arguments: `a`"),
        (
            "Host('a')",
            6,
            "syntax error: single quotes are not accepted",
            "quote values with backticks or double quotes",
        ),
        ("Host(`a`) & Path(`/`)", 11, "syntax error: unexpected '&'", "write &&"),
        ("Host(`a`) | Path(`/`)", 11, "syntax error: unexpected '|'", "write ||"),
        (
            "Host(`a`) Path(`/`)",
            11,
            "syntax error: unexpected 'Path'; expected '&&' or '||' or the end of the rule",
            "join matchers with && or ||",
        ),
        (
            "Host(`a`) and Path(`/`)",
            11,
            "syntax error: unexpected 'and'; expected '&&' or '||' or the end of the rule",
            "write && for and, || for or, ! for not",
        ),
        (
            "`a`",
            1,
            "syntax error: unexpected string `a`; expected '!' or '(' or a matcher",
            "a rule is made of matchers such as Host(`example.com`)",
        ),
        ("Host(`a`) = 1", 11, "syntax error: unexpected character '='", None),
        (
            'Path("/a\\.b")',
            9,
            "syntax error: unknown escape sequence \\. (regexps are easier in backticks, where \\ is literal)",
            None,
        ),
        ('Path("\\400")', 7, "syntax error: octal escape value 256 > 255", None),
        ('Path("\\xZ1")', 7, "syntax error: invalid escape: \\x takes 2 hex digits", None),
        ('Path("\\ud800")', 7, "syntax error: escape \\ud800 is not a valid Unicode code point", None),
    ],
)
def test_syntax_errors(rule: str, col: int, message: str, hint: str | None) -> None:
    parsed = parse_rule(rule, H)
    assert parsed.ast is None
    assert parsed.problems == [RuleProblem(col, message, hint)]


def test_line_break_after_a_closing_parenthesis_ends_the_expression_as_in_go() -> None:
    parsed = parse_rule("Host(`a`)\n&& Path(`/`)", H)
    assert parsed.ast is None
    assert only(parsed) == RuleProblem(
        10,
        "syntax error: a line break here ends the rule (Go inserts a semicolon after ')')",
        "break lines after '&&', '||', '(' or ',' instead",
    )
    assert parse_rule("Header(`a`\n, `b`)", H).problems[0].col == 11
    assert parse_rule("Host(`a`)\n", H).ok  # a final line break is fine


def test_deep_nesting_is_refused_not_a_crash() -> None:
    deep = "!" * 150 + "Host(`a`)"
    assert only(parse_rule(deep, H)).message == "rule nests too deeply (more than 100 levels)"
    nested = "(" * 300 + "Host(`a`)" + ")" * 300
    assert parse_rule(nested, H).ast == m("Host", "a")  # parentheses alone add no level


def test_long_chains_parse_and_print_without_recursion() -> None:
    rule = " || ".join(f"Host(`h{i}.example.com`)" for i in range(1500))
    parsed = parse_rule(rule, H)
    assert parsed.ok
    assert parsed.ast is not None and to_text(parsed.ast) == rule


# -- semantic problems: all of them, each at its column ---------------------------------------------


def test_every_problem_is_reported_with_its_column() -> None:
    parsed = parse_rule("Hots(`a`) && Path(`b`) || ClientIP(`1`) && Query()", H)
    assert parsed.ast is not None  # syntax is fine: the AST is there for tools, problems say it is unusable
    assert parsed.problems == [
        RuleProblem(1, "unknown matcher Hots", "did you mean 'Host'?"),
        RuleProblem(20, "Path: path `b` does not start with '/'"),
        RuleProblem(
            36,
            "ClientIP: `1` is not an IP address or CIDR range",
            "e.g. ClientIP(`192.168.1.7`), ClientIP(`10.0.0.0/8`), ClientIP(`fe80::/10`)",
        ),
        RuleProblem(44, "Query takes 1 or 2 arguments, got none"),
    ]


@pytest.mark.parametrize(  # Traefik matcher_test.go: "no parameter", "empty parameter", "too many parameters"
    ("rule", "message"),
    [
        ("Host()", "Host takes exactly 1 argument, got none"),
        ("Method()", "Method takes exactly 1 argument, got none"),
        ("ClientIP()", "ClientIP takes exactly 1 argument, got none"),
        ("HostRegexp()", "HostRegexp takes exactly 1 argument, got none"),
        ("Path()", "Path takes exactly 1 argument, got none"),
        ("PathPrefix()", "PathPrefix takes exactly 1 argument, got none"),
        ("PathRegexp()", "PathRegexp takes exactly 1 argument, got none"),
        ("Header()", "Header takes exactly 2 arguments, got none"),
        ("Header(`X-Forwarded-Host`)", "Header takes exactly 2 arguments, got 1"),
        ("HeaderRegexp(`X-Forwarded-Host`)", "HeaderRegexp takes exactly 2 arguments, got 1"),
        ("Header(`X`, `a`, `b`)", "Header takes exactly 2 arguments, got 3"),
        ("Query()", "Query takes 1 or 2 arguments, got none"),
        ("Query(`q`, `traefik`, `proxy`)", "Query takes 1 or 2 arguments, got 3"),
        ("QueryRegexp(`q`, `traefik`, `proxy`)", "QueryRegexp takes 1 or 2 arguments, got 3"),
        ("Host(``)", "Host: empty argument"),
        ("Method(``)", "Method: empty argument"),
        ("ClientIP(``)", "ClientIP: empty argument"),
        ("Path(``)", "Path: empty argument"),
        ("PathRegexp(``)", "PathRegexp: empty argument"),
        ("Header(`X-Forwarded-Host`, ``)", "Header: empty argument"),
        ("Header(``, `example.com`)", "Header: empty argument"),
        ("Query(``)", "Query: empty argument"),
        ("Query(`q`, ``)", "Query: empty argument"),
        ("QueryRegexp(``)", "QueryRegexp: empty argument"),
        ("Path(`css`)", "Path: path `css` does not start with '/'"),
        ("PathPrefix(`css`)", "PathPrefix: path `css` does not start with '/'"),
        ("HostRegexp(`(example.com`)", "HostRegexp: invalid regexp: missing closing ): `(example.com`"),
        ("PathRegexp(`/(css`)", "PathRegexp: invalid regexp: missing closing ): `(css`"),
        (
            "HeaderRegexp(`X`,`(example.com`)",
            "HeaderRegexp: invalid regexp: missing closing ): `(example.com`",
        ),
        ("QueryRegexp(`q`, `(traefik`)", "QueryRegexp: invalid regexp: missing closing ): `(traefik`"),
        ("ClientIP(`invalid`)", "ClientIP: `invalid` is not an IP address or CIDR range"),
        ("ClientIP(`10.0.0.0/33`)", "ClientIP: `10.0.0.0/33` is not an IP address or CIDR range"),
        (
            "ClientIP(`10.0.0.0/255.0.0.0`)",
            "ClientIP: `10.0.0.0/255.0.0.0` is not an IP address or CIDR range",
        ),
        ("ClientIP(`fe80::1%eth0`)", "ClientIP: `fe80::1%eth0` is not an IP address or CIDR range"),
        ("Host(`🦭.com`)", "Host: non-ASCII host `🦭.com`"),
        ("HostRegexp(`🦭.com`)", "HostRegexp: non-ASCII pattern; match punycode (`xn--...`) host names"),
    ],
)
def test_matcher_problems(rule: str, message: str) -> None:
    assert only(parse_rule(rule, H)).message == message


def test_problem_columns_point_inside_arguments() -> None:
    assert only(parse_rule("Path(`/a`) && HostRegexp(`a(b`)", H)).col == 28  # the '(' that is never closed
    assert only(parse_rule("Path(`/a`) && Path(``)", H)).col == 20  # the empty argument's quote
    assert only(parse_rule("Path(`/a`) && Query()", H)).col == 15  # the matcher when the count is wrong
    assert only(parse_rule('HostRegexp("a(b")', H)).col == 12  # interpreted strings: the opening quote


def test_non_ascii_host_hint_gives_the_punycode() -> None:
    problem = only(parse_rule("Host(`🦭.com`)", H))
    assert problem.hint == "write Host(`xn--9t9h.com`)"


def test_unknown_matchers_suggest_the_closest_name() -> None:
    assert only(parse_rule("PathPrefx(`/a`)", H)).hint == "did you mean 'PathPrefix'?"
    assert only(parse_rule("pathPrefix(`/a`)", H)) == RuleProblem(
        1,
        "unknown matcher pathPrefix",
        "did you mean 'PathPrefix'? matcher names are case-sensitive: PathPrefix, pathprefix or PATHPREFIX",
    )
    assert (
        only(parse_rule("Nope(`/a`)", "tcp")).hint == "TCP matchers: ALPN, ClientIP, HostSNI, HostSNIRegexp"
    )


def test_matchers_of_the_other_kind() -> None:
    assert only(parse_rule("HostSNI(`a`)", H)).message.startswith(
        "HostSNI is a TCP matcher; HTTP rules take ClientIP"
    )
    problem = only(parse_rule("Host(`a`)", "tcp"))
    assert problem.message == (
        "Host is an HTTP matcher; TCP rules take ALPN, ClientIP, HostSNI, HostSNIRegexp "
        "(match TLS server names with HostSNI)"
    )
    assert problem.hint == "write HostSNI(`a`)"


# -- never-matching forms Traefik v3 accepts: warnings, never errors ---------------------------------


@pytest.mark.parametrize(
    ("rule", "col", "message", "hint"),
    [
        (
            "Host(`**.example.com`)",
            7,
            "Host(`**.example.com`) never matches: `**.` (several labels) is Traefik v3.8 syntax; "
            "v3.7 compares it literally",
            r"write HostRegexp(`^.+\.example\.com$`)",
        ),
        (
            "Host(`a.*.example.com`)",
            9,
            "Host(`a.*.example.com`) never matches: Traefik v3.7 takes `*` alone or as the whole first "
            "label (`*.example.com`)",
            None,
        ),
        (
            "Host(`example.com:8080`)",
            18,
            "Host never matches a port: Traefik compares the request's host without its port",
            "write Host(`example.com`)",
        ),
        ("Host(`[::1]`)", 6, "Host never matches a bracketed address", "write Host(`::1`)"),
        (
            "Header(`Host`, `example.com`)",
            8,
            "Header(`Host`, ...) never matches: Go moves it to the request's Host field",
            "match the host with Host(...) or HostRegexp(...)",
        ),
        (
            "HeaderRegexp(`transfer-encoding`, `chunked`)",
            14,
            "HeaderRegexp(`transfer-encoding`, ...) never matches: Go moves it to the HTTP framing",
            None,
        ),
    ],
)
def test_never_matching_forms(rule: str, col: int, message: str, hint: str | None) -> None:
    parsed = parse_rule(rule, H)
    assert parsed.problems == [RuleProblem(col, message, hint, "warning")]
    assert parsed.ok and parsed.warnings == parsed.problems  # Traefik runs it, so it compiles here


def test_host_wildcards_are_fine() -> None:  # Traefik v3.7: `*` and a leading `*.` label
    for rule in ("Host(`*`)", "Host(`*.example.com`)", "Host(`*.EXAMPLE.com.`)", "Host(`*.com`)"):
        assert parse_rule(rule, H).problems == [], rule


def test_host_ipv6_and_trailing_dot_are_fine() -> None:  # Traefik mux_test: "Host IPv6", trailing period
    assert parse_rule("Host(`10::10`)", H).ok
    assert parse_rule("Host(`localhost.`)", H).ok


# -- Traefik v2 syntax ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "message", "hint"),
    [
        (
            "Host(`nope`,`localhost`)",
            "Host takes one argument in Traefik v3; a list of values is Traefik v2 syntax",
            "Host(`nope`) || Host(`localhost`)",
        ),
        (
            "Method(`GET`,`POST`)",
            "Method takes one argument in Traefik v3; a list of values is Traefik v2 syntax",
            "Method(`GET`) || Method(`POST`)",
        ),
        (
            "ClientIP(`10.0.0.1`, `10.0.0.0`)",
            "ClientIP takes one argument in Traefik v3; a list of values is Traefik v2 syntax",
            "ClientIP(`10.0.0.1`) || ClientIP(`10.0.0.0`)",
        ),
        (
            "Path(`/powpow`, `/titi`)",
            "Path takes one argument in Traefik v3; a list of values is Traefik v2 syntax",
            "Path(`/powpow`) || Path(`/titi`)",
        ),
        (
            "HostHeader(`localhost`)",
            "HostHeader is Traefik v2 syntax; Traefik v3 calls it Host",
            "write Host(`localhost`)",
        ),
        (
            "HeadersRegexp(`Content-Type`, `application/(text|json)`)",
            "HeadersRegexp is Traefik v2 syntax; Traefik v3 calls it HeaderRegexp",
            "write HeaderRegexp(`Content-Type`, `application/(text|json)`)",
        ),
        (
            "Headers(`a`, `1`, `b`, `2`)",
            "Headers with several name/value pairs is Traefik v2 syntax",
            "write Header(`a`, `1`) && Header(`b`, `2`)",
        ),
        ("Query(`foo=bar`)", "Query(`key=value`) is Traefik v2 syntax", "write Query(`foo`, `bar`)"),
        ("Query(`foo=b=ar`)", "Query(`key=value`) is Traefik v2 syntax", "write Query(`foo`, `b=ar`)"),
        (
            "Query(`foo=bar`, `bar=baz`)",
            "Query(`key=value`) is Traefik v2 syntax",
            "write Query(`foo`, `bar`) && Query(`bar`, `baz`)",
        ),
        (
            "Query(`a=1`, `b=2`, `c=3`)",
            "Query(`key=value`, ...) is Traefik v2 syntax",
            "write Query(`a`, `1`) && Query(`b`, `2`) && Query(`c`, `3`)",
        ),
        (
            "PathPrefix(`/api/{id:[0-9]+}`)",
            "PathPrefix: `{name:pattern}` templates are Traefik v2 syntax; in v3 the braces are literal text",
            "write PathRegexp(`^/api/([0-9]+)`)",
        ),
        (
            "Path(`/users/{id}`)",
            "Path: `{name:pattern}` templates are Traefik v2 syntax; in v3 the braces are literal text",
            "write PathRegexp(`^/users/([^/]+)$`)",
        ),
        (
            r"HostRegexp(`{subdomain:[a-z]+}.example.com`)",
            "HostRegexp: `{name:pattern}` templates are Traefik v2 syntax; in v3 the braces are literal text",
            r"write HostRegexp(`^([a-z]+)\.example\.com$`)",
        ),
        (
            "PathRegexp(`/{path:(css|js)}`)",
            "PathRegexp: `{name:pattern}` templates are Traefik v2 syntax; in v3 the braces are literal text",
            "write PathRegexp(`^/((css|js))$`)",
        ),
        (
            "QueryRegexp(`q`, `{value:(traefik|nginx)}`)",
            "QueryRegexp: `{name:pattern}` templates are Traefik v2 syntax; in v3 the braces are literal text",
            "write QueryRegexp(`q`, `^((traefik|nginx))$`)",
        ),
        (
            "Headers(`X-Api-Key`, ``)",
            "Headers(`X-Api-Key`, ``) matched any value in Traefik v2; Traefik v3 rejects an empty value",
            "to match a present header with any value, write HeaderRegexp(`X-Api-Key`, `.*`)",
        ),
    ],
)
def test_traefik_v2_forms_say_what_to_write_in_v3(rule: str, message: str, hint: str) -> None:
    problem = only(parse_rule(rule, H))
    assert (problem.message, problem.hint) == (message, hint)


def test_v2_template_column_points_at_the_brace() -> None:
    assert only(parse_rule("PathPrefix(`/api/{id}`)", H)).col == 18


def test_regexp_repeats_are_not_templates() -> None:
    assert parse_rule(r"PathRegexp(`^/v[0-9]{1,2}/`)", H).ok
    assert parse_rule(r"HostRegexp(`^[a-z]{3}\.example\.com$`)", H).ok


# -- TCP -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(  # Traefik tcp/matcher_test.go build errors
    ("rule", "message"),
    [
        ("HostSNI(``)", "HostSNI: empty argument"),
        (
            "HostSNI(`example.com`, `example.org`)",
            "HostSNI takes one argument in Traefik v3; a list of values is Traefik v2 syntax",
        ),
        ("HostSNI(`**.example.com`)", "HostSNI: `**.example.com` is not a valid hostname"),
        ("HostSNI(`a.*.com`)", "HostSNI: `a.*.com` is not a valid hostname"),
        ("HostSNI(`🦭.com`)", "HostSNI: `🦭.com` is not a valid hostname"),
        ("HostSNI(`a b.com`)", "HostSNI: `a b.com` is not a valid hostname"),
        ("HostSNIRegexp(``)", "HostSNIRegexp: empty argument"),
        (
            "HostSNIRegexp(`🦭.com`)",
            "HostSNIRegexp: non-ASCII pattern; match punycode (`xn--...`) host names",
        ),
        ("HostSNIRegexp(`(example.com`)", "HostSNIRegexp: invalid regexp: missing closing ): `(example.com`"),
        (
            "HostSNIRegexp(`example.com`, `example.org`)",
            "HostSNIRegexp takes one argument in Traefik v3; a list of values is Traefik v2 syntax",
        ),
        ("ClientIP(``)", "ClientIP: empty argument"),
        ("ClientIP(`🦭/32`)", "ClientIP: `🦭/32` is not an IP address or CIDR range"),
        (
            "ClientIP(`127.0.0.1`, `127.0.0.2`)",
            "ClientIP takes one argument in Traefik v3; a list of values is Traefik v2 syntax",
        ),
        (
            "ALPN(`acme-tls/1`)",
            "ALPN(`acme-tls/1`) is not allowed: it is reserved for the ACME TLS-ALPN challenge",
        ),
        ("ALPN(``)", "ALPN: empty argument"),
        (
            "ALPN(`h2`, `mqtt`)",
            "ALPN takes one argument in Traefik v3; a list of values is Traefik v2 syntax",
        ),
    ],
)
def test_tcp_matcher_problems(rule: str, message: str) -> None:
    assert only(parse_rule(rule, "tcp")).message == message


def test_tcp_valid_rules() -> None:
    for rule in ("HostSNI(`*`)", "HostSNI(`xn--9t9h.com`)", "HostSNI(`example.com.`)", "ALPN(`h2`)",
                 "HostSNI(`*.com`)", "HostSNI(`*.Example.com`)", "HostSNI(`a_b.com`)", "HostSNI(`10::10`)",
                 "HostSNI(`Example.COM`)",
                 "HostSNIRegexp(`^.+\\.example\\.com$`)", "ClientIP(`20.20.20.20/24`)",
                 "HostSNI(`db.example.com`) && !ClientIP(`10.0.0.0/8`) || ALPN(`postgresql`)"):  # fmt: skip
        assert parse_rule(rule, "tcp").ok, rule


# -- canonical printing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "canonical"),
    [
        ('host("a")', "Host(`a`)"),
        ("Headers(`X`,`y`)", "Header(`X`, `y`)"),
        ("(Host(`a`) || Host(`b`)) && Path(`/`)", "(Host(`a`) || Host(`b`)) && Path(`/`)"),
        ("Host(`a`) || (Host(`b`) && Path(`/`))", "Host(`a`) || Host(`b`) && Path(`/`)"),
        ("Host(`a`) && (Host(`b`) && Path(`/`))", "Host(`a`) && (Host(`b`) && Path(`/`))"),
        ("(Host(`a`) && Host(`b`)) && Path(`/`)", "Host(`a`) && Host(`b`) && Path(`/`)"),
        ("!(Host(`a`))", "!Host(`a`)"),
        ("!(!Host(`a`) || Path(`/`))", "!(!Host(`a`) || Path(`/`))"),
        ('Header("X", "a`b")', 'Header(`X`, "a`b")'),
        ('Path("/a\\nb\\x00")', 'Path("/a\\nb\\x00")'),
        ('Path("/\\xff")', 'Path("/\\xff")'),
    ],
)
def test_to_text_is_canonical_and_parses_back(rule: str, canonical: str) -> None:
    parsed = parse_rule(rule, H)
    assert parsed.ast is not None
    assert to_text(parsed.ast) == canonical
    assert parse_rule(canonical, H).ast == parsed.ast


# -- priorities ------------------------------------------------------------------------------------------


def test_default_priority_is_the_rule_length_in_bytes() -> None:
    # Traefik docs: HostRegexp(`[a-z]+\.traefik\.com`) is 34, Host(`foobar.traefik.com`) is 26.
    assert default_priority(r"HostRegexp(`[a-z]+\.traefik\.com`)") == 34
    assert default_priority("Host(`foobar.traefik.com`)") == 26
    assert default_priority("Path(`/é`)") == 11  # Go's len() counts bytes
    assert default_priority("Host(`a`)  ") == 11  # the rule as written, spaces included


def test_tcp_catch_all_gets_minus_one() -> None:  # Traefik tcp/mux.go
    assert default_priority("HostSNI(`*`)") == -1
    assert default_priority("(HostSNI(`*`))") == -1
    assert default_priority("HostSNI(`*`) || ALPN(`h2`)") == len("HostSNI(`*`) || ALPN(`h2`)")
    assert default_priority("HostSNIRegexp(`.*`)") == len("HostSNIRegexp(`.*`)")  # Traefik: not the catch-all
    assert is_catch_all("hostsni(`*`)") and not is_catch_all("HostSNI(`example.com`)")


def test_explicit_priority_wins_and_zero_means_unset() -> None:
    assert effective_priority("Host(`a`)", 5) == 5
    assert effective_priority("Host(`a`)", 0) == 9
    assert effective_priority("Host(`a`)", None) == 9
    assert effective_priority("HostSNI(`*`)", None) == -1


def test_sort_key_orders_by_priority_then_name() -> None:
    routers = [("b", 10), ("a", 10), ("c", 20), ("d", -1)]
    assert [n for n, _ in sorted(routers, key=lambda r: sort_key(*r))] == ["c", "a", "b", "d"]
