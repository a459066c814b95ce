"""TCP matchers, against the cases of Traefik's pkg/muxer/tcp/matcher_test.go and mux.go."""

from __future__ import annotations

from a3s_gateway.compiler.rules import compile_tcp, default_priority, is_catch_all, parse_rule

from .rule_inputs import Conn


def matches(rule: str, conn: Conn) -> bool:
    parsed = parse_rule(rule, "tcp")
    assert parsed.ast is not None and not parsed.problems, parsed.problems
    return compile_tcp(parsed.ast)(conn)


def by_sni(rule: str, expected: dict[str | None, bool]) -> None:
    assert {sni: matches(rule, Conn(sni=sni)) for sni in expected} == expected


def test_host_sni() -> None:  # Traefik Test_HostSNI
    by_sni("HostSNI(`xn--9t9h.com`)", {"xn--9t9h.com": True, "🦭.com": False})
    by_sni("HostSNI(`example.com`)", {"example.com": True, "example.org": False, "": False, None: False})
    by_sni("HostSNI(`foo.example.com`)", {"foo.example.com": True, "example.com": False})


def test_host_sni_values_traefik_v3_7_accepts() -> None:  # hostOrIP: [[:word:]], '.', '-', ':'
    by_sni("HostSNI(`a_b.example.com`)", {"a_b.example.com": True, "ab.example.com": False})
    by_sni("HostSNI(`10::10`)", {"10::10": True, "10::11": False})
    by_sni("HostSNI(`127.0.0.1`)", {"127.0.0.1": True})
    # Case-insensitive on both sides since v3.7 (EqualFold); the server name is lower-cased anyway.
    by_sni("HostSNI(`Example.COM`)", {"example.com": True, "EXAMPLE.com": True, "example.org": False})


def test_host_sni_wildcard_matches_exactly_one_label() -> None:
    by_sni(
        "HostSNI(`*.example.com`)",
        {
            "foo.example.com": True,
            "FOO.Example.com": True,
            "foo.bar.example.com": False,
            "example.com": False,
            "foo.example.com.": False,  # the server name keeps its dot (RFC 6066 forbids one)
            "": False,
            None: False,
        },
    )
    by_sni("HostSNI(`*.example.com.`)", {"foo.example.com": True})
    by_sni("HostSNI(`*.com`)", {"example.com": True, "a.example.com": False})


def test_host_sni_trailing_dot_on_the_rule() -> None:
    # v3.7 hostSNI: one trailing dot dropped from the rule, none from the server name (RFC 6066 3
    # forbids it; Go's TLS stack refuses such a ClientHello). Traefik v3.0's table expected the
    # first case to match; v3.7's DomainMatchHostExpression(serverName, TrimSuffix(rule)) does not.
    by_sni("HostSNI(`example.com.`)", {"example.com.": False, "example.com": True})
    by_sni("HostSNI(`example.com`)", {"example.com.": False})


def test_host_sni_lower_cases_the_server_name() -> None:  # NewConnData: types.CanonicalDomain
    by_sni("HostSNI(`example.com`)", {"EXAMPLE.com": True, " example.com ": True})


def test_host_sni_catch_all_matches_without_sni() -> (
    None
):  # "Matching globing host `*` (and empty server name)"
    by_sni("HostSNI(`*`)", {"example.com": True, "": True, None: True})
    assert matches("HostSNI(`*`)", Conn(client_ip="garbage"))


def test_catch_all_detection() -> None:  # Traefik Test_HostSNICatchAll
    assert is_catch_all("HostSNI(`*`)")
    assert not is_catch_all("HostSNI(`example.com`)")
    assert not is_catch_all("HostSNIRegexp(`.*`)")
    assert default_priority("HostSNI(`*`)") == -1


def test_host_sni_regexp() -> None:  # Traefik Test_HostSNIRegexp
    by_sni(
        r"HostSNIRegexp(`^example\.(com|org)$`)",
        {
            "example.com": True,
            "example.com.": False,
            "EXAMPLE.com": True,  # lower-cased first (Traefik's test feeds ConnData directly, bypassing that)
            "example.org": True,
            "exampleuorg": False,
            "": False,
            None: False,
        },
    )
    by_sni(r"HostSNIRegexp(`^.+\.example\.com$`)", {"a.example.com": True, "example.com": False})
    by_sni("HostSNIRegexp(`.*`)", {None: True, "x": True})  # an empty server name matches `.*`


def test_client_ip() -> None:  # Traefik Test_ClientIP
    rule = "ClientIP(`20.20.20.20`)"
    assert matches(rule, Conn(client_ip="20.20.20.20"))
    assert not matches(rule, Conn(client_ip="10.10.10.10"))
    rule = "ClientIP(`20.20.20.20/24`)"
    assert matches(rule, Conn(client_ip="20.20.20.20"))
    assert matches(rule, Conn(client_ip="20.20.20.40"))
    assert not matches(rule, Conn(client_ip="10.10.10.10"))
    assert matches("ClientIP(`2001:db8::/32`)", Conn(client_ip="2001:db8::7"))


def test_alpn() -> None:  # Traefik Test_ALPN
    assert matches("ALPN(`h2`)", Conn(alpn=("h2",)))
    assert not matches("ALPN(`h2`)", Conn(alpn=("mqtt",)))
    assert not matches("ALPN(`h2`)", Conn(alpn=("",)))
    assert matches("ALPN(`h2`)", Conn(alpn=("http/1.1", "h2")))
    assert not matches("ALPN(`h2`)", Conn(alpn=("H2",)))
    assert not matches("ALPN(`h2`)", Conn())


def test_combinations() -> None:
    rule = "HostSNI(`db.example.com`) && !ClientIP(`10.0.0.0/8`) || ALPN(`postgresql`)"
    assert matches(rule, Conn(sni="db.example.com", client_ip="192.168.0.1"))
    assert not matches(rule, Conn(sni="db.example.com", client_ip="10.1.2.3"))
    assert matches(rule, Conn(sni=None, alpn=("postgresql",), client_ip="10.1.2.3"))
