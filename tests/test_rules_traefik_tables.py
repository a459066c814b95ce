"""Traefik's own matcher and priority tables, as data, run through our compiler and matchers.

tests/data/traefik_v3_7/*.json are Traefik's Go test tables (pkg/muxer/http and pkg/muxer/tcp,
and pkg/muxer's host expressions), translated case for case; each file names its source file and
commit. Every case runs here: a rule Traefik refuses must not compile, every other rule compiles
(with a warning only where the case says so) and matches exactly the requests Traefik matches.
A case or request marked `not_followed` is a deliberate difference listed in docs/rules.md: the
test checks that A3S does what that section says instead, so the list cannot go stale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from a3s_gateway.compiler.rules import (
    compile_http,
    compile_tcp,
    default_priority,
    effective_priority,
    is_catch_all,
    parse_rule,
    sort_key,
)
from a3s_gateway.compiler.rules._inputs import routing_path

from .rule_inputs import Conn, Fields, Req

DATA = Path(__file__).with_name("data") / "traefik_v3_7"


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    assert {"repository", "path", "commit"} <= doc["source"].keys()
    return doc


def http_request(spec: dict[str, Any]) -> Req:
    """What Go's httptest.NewRequest(method, url) gives the matchers."""
    url = urlsplit(spec.get("url", "https://example.com"))
    return Req(
        method=spec.get("method", "GET"),
        host=url.netloc,
        path=url.path,
        query=url.query,
        headers=Fields(tuple((k, v) for k, v in spec.get("headers", []))),
        client_ip=spec.get("client_ip", "192.0.2.1"),
    )


def tcp_connection(spec: dict[str, Any]) -> Conn:
    return Conn(spec.get("sni", ""), tuple(spec.get("alpn", ())), spec.get("client_ip", "0.0.0.0"))


def ids(cases: list[dict[str, Any]]) -> list[str]:
    return [f"{c.get('test', 'docs')}: {c['desc']}" for c in cases]


def check_case(case: dict[str, Any], kind: str) -> None:
    parsed = parse_rule(case["rule"], kind)  # type: ignore[arg-type]
    if "not_followed" in case:  # matchers of later Traefik releases: an unknown matcher here
        assert not parsed.ok, case["not_followed"]
        return
    if case.get("error"):
        assert not parsed.ok, f"Traefik refuses {case['rule']!r}; it compiled here"
        return
    assert parsed.ok and parsed.ast is not None, parsed.problems
    if case.get("warning"):
        assert parsed.problems and parsed.problems == parsed.warnings, parsed.problems
    else:
        assert parsed.problems == [], parsed.problems
    if kind == "http":
        matcher = compile_http(parsed.ast)
        results = [(r, matcher(http_request(r))) for r in case["requests"]]
    else:
        tcp_matcher = compile_tcp(parsed.ast)
        results = [(r, tcp_matcher(tcp_connection(r))) for r in case["requests"]]
        if "catch_all" in case:
            assert is_catch_all(case["rule"]) is case["catch_all"]
    for request, got in results:
        # A request that is not followed is one where A3S gives the other answer, on purpose.
        expected = request["match"] != ("not_followed" in request)
        assert got is expected, request


HTTP_MATCHERS = load("http_matcher_test.json")
HTTP_MUX = load("http_mux_test.json")
TCP_MATCHERS = load("tcp_matcher_test.json")
TCP_MUX = load("tcp_mux_test.json")
WILDCARDS = load("wildcards.json")


@pytest.mark.parametrize("case", HTTP_MATCHERS["cases"], ids=ids(HTTP_MATCHERS["cases"]))
def test_http_matcher_table(case: dict[str, Any]) -> None:
    check_case(case, "http")


@pytest.mark.parametrize("case", HTTP_MUX["cases"], ids=ids(HTTP_MUX["cases"]))
def test_http_mux_table(case: dict[str, Any]) -> None:
    check_case(case, "http")


@pytest.mark.parametrize("case", TCP_MATCHERS["cases"], ids=ids(TCP_MATCHERS["cases"]))
def test_tcp_matcher_table(case: dict[str, Any]) -> None:
    check_case(case, "tcp")


@pytest.mark.parametrize("case", TCP_MUX["cases"], ids=ids(TCP_MUX["cases"]))
def test_tcp_mux_table(case: dict[str, Any]) -> None:
    check_case(case, "tcp")


def first_router(case: dict[str, Any], kind: str, matches: Any) -> dict[str, Any]:
    """The router A3S picks: highest effective priority first, ties by name."""
    routers = sorted(
        case["routers"], key=lambda r: sort_key(r["name"], effective_priority(r["rule"], r["priority"]))
    )
    for router in routers:
        parsed = parse_rule(router["rule"], kind)  # type: ignore[arg-type]
        assert parsed.ok and parsed.ast is not None
        compiled = compile_http(parsed.ast) if kind == "http" else compile_tcp(parsed.ast)
        if compiled(matches):
            return router
    raise AssertionError("no router matched")


@pytest.mark.parametrize("case", HTTP_MUX["priorities"], ids=ids(HTTP_MUX["priorities"]))
def test_http_priority_table(case: dict[str, Any]) -> None:
    chosen = first_router(case, "http", Req(host="", path=case["path"]))
    if "not_followed" in case:  # provider precedence: A3S breaks the tie by name instead
        assert chosen["name"] == min(r["name"] for r in case["routers"])
    else:
        assert chosen["name"] == case["expected"]


@pytest.mark.parametrize("case", TCP_MUX["priorities"], ids=ids(TCP_MUX["priorities"]))
def test_tcp_priority_table(case: dict[str, Any]) -> None:
    chosen = first_router(case, "tcp", Conn(case["sni"]))
    assert chosen["rule"] == case["expected_rule"]
    if "not_followed" in case:
        assert chosen["name"] == min(r["name"] for r in case["routers"])
    elif "expected_name" in case:
        assert chosen["name"] == case["expected_name"]


@pytest.mark.parametrize(
    "case", HTTP_MUX["rule_priority"] + TCP_MUX["rule_priority"], ids=lambda c: f"{c['rule']!r}"
)
def test_default_priority_table(case: dict[str, Any]) -> None:
    assert default_priority(case["rule"]) == case["priority"]


@pytest.mark.parametrize("case", HTTP_MUX["empty_host"], ids=ids(HTTP_MUX["empty_host"]))
def test_absolute_form_host_table(case: dict[str, Any]) -> None:
    # TestEmptyHost: the runtime gives Host/HostRegexp the target's authority when the request is
    # in absolute form (RFC 9112 3.2.2) and the Host field otherwise; here, the matchers on that host.
    request_line, _, rest = case["raw"].partition("\r\n")
    target = request_line.split(" ")[1]
    host_field = next(line.split(":", 1)[1].strip() for line in rest.split("\r\n") if ":" in line)
    authority = urlsplit(target).netloc.rpartition("@")[2]
    parsed = parse_rule(case["rule"], "http")
    assert parsed.ok and parsed.ast is not None
    assert compile_http(parsed.ast)(Req(host=authority or host_field)) is case["match"]


@pytest.mark.parametrize("case", HTTP_MUX["routing_path"], ids=ids(HTTP_MUX["routing_path"]))
def test_routing_path_table(case: dict[str, Any]) -> None:
    assert routing_path(case["path"]) == case["routing_path"]


@pytest.mark.parametrize(
    "case", WILDCARDS["cases"] + WILDCARDS["docs"], ids=ids(WILDCARDS["cases"] + WILDCARDS["docs"])
)
def test_host_expression_table(case: dict[str, Any]) -> None:
    expression, domain = case["host_expression"], case["domain"]
    host = parse_rule(f"Host(`{expression}`)", "http")
    assert host.ok and host.ast is not None, host.problems
    assert compile_http(host.ast)(Req(host=domain)) is case["match"]
    sni = parse_rule(f"HostSNI(`{expression}`)", "tcp")
    if case.get("sni_error"):  # v3.7's hostOrIP refuses `**.`
        assert not sni.ok
        return
    assert sni.ok and sni.ast is not None, sni.problems
    assert compile_tcp(sni.ast)(Conn(domain)) is case["match"]


def test_every_table_names_its_source() -> None:
    for path in sorted(DATA.glob("*.json")):
        source = json.loads(path.read_text(encoding="utf-8"))["source"]
        assert source["repository"] == "traefik/traefik" and len(source["commit"]) == 40, path
