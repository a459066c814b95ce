"""ACME configuration errors, each at its file:line:col, and the plan the runtime is given."""

from __future__ import annotations

from pathlib import Path

from a3s_gateway.compiler import compile_config
from a3s_gateway.compiler.acme import acme_plan

BASE = """
entrypoints "web" { address = "127.0.0.1:8080" }
entrypoints "websecure" {
  address = "127.0.0.1:8443"
  tls { }
}
"""

RESOLVER = """
certificate_resolvers "le" {
  acme {
    email   = "ops@example.com"
    storage = "acme.json"
    http_challenge { entrypoint = "web" }
  }
}
"""


def _errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "gw.hcl"
    path.write_text(text)
    return [
        f"{d.span.line}:{d.span.col} {d.message}" if d.span else d.message
        for d in compile_config([str(path)], {}).diagnostics.errors
    ]


def test_a_wildcard_without_dns01_is_an_error_at_its_line(tmp_path: Path) -> None:
    text = (
        BASE
        + RESOLVER
        + """
routers "app" {
  rule        = "Host(`example.com`)"
  service     = "ping@internal"
  entrypoints = ["websecure"]
  tls {
    cert_resolver = "le"
    domains {
      main = "*.example.com"
    }
  }
}
"""
    )
    errors = _errors(tmp_path, text)
    assert any(
        e.startswith(
            "22:5 the wildcard name '*.example.com' can only be validated by DNS-01 (http-01 is configured)"
        )
        for e in errors
    ), errors


def test_a3s_spelling_wildcard_is_an_error_at_acme_domains(tmp_path: Path) -> None:
    text = """
entrypoints "websecure" {
  address = "127.0.0.1:8443"
  tls {
    acme         = true
    acme_domains = ["*.example.com"]
  }
}
"""
    errors = _errors(tmp_path, text)
    assert any(
        e.startswith("6:5 the wildcard name '*.example.com' can only be validated by DNS-01") for e in errors
    ), errors


def test_unknown_resolver_and_wrong_challenge_entrypoint(tmp_path: Path) -> None:
    text = (
        BASE
        + RESOLVER.replace('entrypoint = "web"', 'entrypoint = "websecure"')
        + """
routers "app" {
  rule        = "Host(`example.com`)"
  service     = "ping@internal"
  entrypoints = ["websecure"]
  tls { cert_resolver = "lee" }
}
"""
    )
    errors = _errors(tmp_path, text)
    assert any(
        e.startswith("12:22 resolver 'le': HTTP-01 is answered on a plain HTTP entrypoint") for e in errors
    ), errors
    assert any(e.startswith("20:9 router 'app' uses unknown certificate resolver 'lee'") for e in errors), (
        errors
    )


def test_tls_without_certificates_needs_a_resolver(tmp_path: Path) -> None:
    errors = _errors(tmp_path, BASE)
    assert any(
        e.startswith("5:3 entrypoint 'websecure': tls needs cert_file and key_file") for e in errors
    ), errors


def test_the_plan_names_router_hosts_and_the_entrypoints_serving_them(tmp_path: Path) -> None:
    text = (
        BASE
        + RESOLVER
        + """
routers "app" {
  rule        = "Host(`a.example.com`) || (Host(`b.example.com`) && PathPrefix(`/x`))"
  service     = "ping@internal"
  entrypoints = ["websecure"]
  tls { cert_resolver = "le" }
}
routers "everything" {
  rule    = "PathPrefix(`/`)"
  service = "ping@internal"
}
"""
    )
    path = tmp_path / "gw.hcl"
    path.write_text(text)
    result = compile_config([str(path)], {})
    assert result.graph is not None, [d.message for d in result.diagnostics.errors]
    (plan,) = acme_plan(result.graph)
    assert plan.name == "le" and plan.entrypoints == ("websecure",)
    assert plan.certificates == (("a.example.com", "b.example.com"),)
    # The challenge router sits above the catch-all on the challenge entrypoint.
    router = result.graph.node("router:acme-http@internal")
    assert router is not None and router.attrs["entrypoints"] == ["web"]
    assert router.attrs["priority"] > result.graph.node("router:everything").attrs["priority"]  # type: ignore[union-attr]


def test_a3s_acme_keys_need_acme_true_and_staging_or_a_directory(tmp_path: Path) -> None:
    """No key of the A3S spelling validates to be ignored: without acme = true nothing reads it,
    and acme_directory given leaves acme_staging nothing to choose."""
    text = """
entrypoints "websecure" {
  address = "127.0.0.1:8443"
  tls {
    certificates = [{ cert_file = "c.pem", key_file = "k.pem" }]
    acme_email   = "ops@example.com"
    acme_staging = true
  }
}
entrypoints "other" {
  address = "127.0.0.1:8444"
  tls {
    acme           = true
    acme_domains   = ["example.com"]
    acme_staging   = true
    acme_directory = "https://ca.internal/directory"
  }
}
"""
    errors = _errors(tmp_path, text)
    assert "6:5 entrypoint 'websecure': acme_email applies with acme = true" in errors, errors
    assert "7:5 entrypoint 'websecure': acme_staging applies with acme = true" in errors, errors
    assert any(
        e.startswith("15:5 entrypoint 'other': acme_staging picks Let's Encrypt's staging") for e in errors
    ), errors
