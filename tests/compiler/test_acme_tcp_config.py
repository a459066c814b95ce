"""ACME for TLS-terminating TCP routers: the configuration errors, each at its line, and the plan
(the HostSNI() names of the routers that use a resolver, or their tls.domains)."""

from __future__ import annotations

from pathlib import Path

from a3s_gateway.compiler import CompileResult, compile_config
from a3s_gateway.compiler.acme import ResolverPlan, acme_plan

BASE = """
entrypoints "web" { address = "127.0.0.1:8080" }
entrypoints "db" {
  address  = "127.0.0.1:5433"
  protocol = "tcp"
  tls { }
}
services "pg" {
  load_balancer { servers = [{ address = "127.0.0.1:5432" }] }
}
"""


def resolver(challenge: str) -> str:
    return f"""
certificate_resolvers "le" {{
  acme {{
    email   = "ops@example.com"
    storage = "acme.json"
    {challenge}
  }}
}}
"""


TLS_ALPN = resolver("tls_challenge {}")
HTTP_01 = resolver('http_challenge { entrypoint = "web" }')
DNS_01 = resolver('dns_challenge {\n      provider  = "cloudflare"\n      api_token = "t"\n    }')


def router(rule: str, tls: str = 'cert_resolver = "le"') -> str:
    return f"""tcp_routers "pg" {{
  rule    = "{rule}"
  service = "pg"
  tls {{ {tls} }}
}}
"""


def _compile(tmp_path: Path, text: str) -> tuple[list[str], CompileResult]:
    path = tmp_path / "gw.hcl"
    path.write_text(text)
    result = compile_config([str(path)], {})
    errors = [
        f"{d.span.line}:{d.span.col} {d.message}" if d.span else d.message for d in result.diagnostics.errors
    ]
    return errors, result


def _plan(result: CompileResult) -> tuple[ResolverPlan, ...]:
    assert result.graph is not None
    return acme_plan(result.graph)


def _assert_error_at(tmp_path: Path, text: str, needle: str, col: int, message: str) -> None:
    """Compiling `text` reports `message` at the line holding `needle`, column `col`."""
    errors, _ = _compile(tmp_path, text)
    line = next(i for i, written in enumerate(text.splitlines(), 1) if needle in written)
    assert any(e.startswith(f"{line}:{col} {message}") for e in errors), errors


def test_hostsni_star_without_domains_is_an_error_at_the_rule(tmp_path: Path) -> None:
    text = BASE + TLS_ALPN + router("HostSNI(`*`)")
    message = "TCP router 'pg' uses certificate resolver 'le' but its rule names no server"
    _assert_error_at(tmp_path, text, "HostSNI(`*`)", 3, message)


def test_hostsni_star_with_domains_orders_the_domains(tmp_path: Path) -> None:
    text = BASE + TLS_ALPN + router("HostSNI(`*`)", 'cert_resolver = "le"\n    domains { main = "db.test" }')
    errors, result = _compile(tmp_path, text)
    assert errors == []
    (plan,) = _plan(result)
    assert (plan.name, plan.certificates, plan.entrypoints) == ("le", (("db.test",),), ("db",))


def test_the_plan_takes_the_hostsni_names(tmp_path: Path) -> None:
    text = BASE + TLS_ALPN + router("HostSNI(`DB.test`) || HostSNI(`replica.db.test`)")
    errors, result = _compile(tmp_path, text)
    assert errors == []
    (plan,) = _plan(result)
    assert plan.certificates == (("db.test", "replica.db.test"),)
    assert plan.acme.challenge == "tls-alpn-01"


def test_a_wildcard_hostsni_needs_dns01(tmp_path: Path) -> None:
    text = BASE + TLS_ALPN + router("HostSNI(`*.db.test`)")
    message = "the wildcard name '*.db.test' can only be validated by DNS-01 (tls-alpn-01"
    _assert_error_at(tmp_path, text, "*.db.test", 3, message)
    errors, result = _compile(tmp_path, BASE + DNS_01 + router("HostSNI(`*.db.test`)"))
    assert errors == []
    (plan,) = _plan(result)
    assert plan.certificates == (("*.db.test",),)


def test_http01_is_allowed_when_its_entrypoint_is_configured(tmp_path: Path) -> None:
    errors, result = _compile(tmp_path, BASE + HTTP_01 + router("HostSNI(`db.test`)"))
    assert errors == []
    (plan,) = _plan(result)
    assert plan.acme.challenge == "http-01" and plan.entrypoints == ("db",)


def test_passthrough_with_a_resolver_is_an_error(tmp_path: Path) -> None:
    text = BASE + TLS_ALPN + router("HostSNI(`db.test`)", 'passthrough = true\n    cert_resolver = "le"')
    _assert_error_at(tmp_path, text, 'cert_resolver = "le"', 5, "TCP router 'pg' forwards TLS (passthrough)")


def test_a_tcp_entrypoint_needs_a_certificate_from_somewhere(tmp_path: Path) -> None:
    errors, _ = _compile(tmp_path, BASE + router("HostSNI(`db.test`)", ""))
    assert any("entrypoint 'db': tls needs cert_file and key_file" in e for e in errors), errors
