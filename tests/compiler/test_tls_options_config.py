"""TLS options (`tls_options`, routers' `tls { options }`): the configuration errors, each at its
line, and the plan the runtime builds its SSL contexts from."""

from __future__ import annotations

from pathlib import Path

from a3s_gateway.compiler.schema import TlsOptionsConfig
from a3s_gateway.compiler.tls_options import EntrypointOptions, tls_options_plan

from .test_acme_tcp_config import _compile

BASE = """
entrypoints "web" { address = "127.0.0.1:8080" }
entrypoints "websecure" {
  address = "127.0.0.1:8443"
  tls {
    cert_file = "c.pem"
    key_file  = "k.pem"
  }
}
entrypoints "db" {
  address  = "127.0.0.1:5433"
  protocol = "tcp"
  tls {
    cert_file = "c.pem"
    key_file  = "k.pem"
  }
}
tls_options "modern" { min_version = "1.3" }
tls_options "mtls" {
  client_auth { ca_files = ["ca.pem"] }
}
"""


def http(name: str, rule: str, options: str, entrypoints: str = '["websecure"]') -> str:
    return f"""routers "{name}" {{
  rule        = "{rule}"
  service     = "ping@internal"
  entrypoints = {entrypoints}
  tls {{ options = "{options}" }}
}}
"""


def test_the_plan_gives_each_host_its_options(tmp_path: Path) -> None:
    text = (
        BASE + http("a", "Host(`a.test`) || Host(`A2.test`)", "modern") + http("b", "Host(`b.test`)", "mtls")
    )
    text += """tcp_routers "pg" {
  rule    = "HostSNI(`pg.test`)"
  service = "pg"
  tls { options = "modern" }
}
services "pg" {
  load_balancer { servers = [{ address = "127.0.0.1:5432" }] }
}
"""
    errors, result = _compile(tmp_path, text)
    assert errors == []
    assert result.graph is not None
    plan = tls_options_plan(result.graph)
    modern = TlsOptionsConfig(min_version="1.3")
    assert plan["websecure"].by_host == (("a.test", "modern"), ("a2.test", "modern"), ("b.test", "mtls"))
    assert [name for name, _ in plan["websecure"].options] == ["modern", "mtls"]
    assert plan["db"] == EntrypointOptions(None, (("pg.test", "modern"),), (("modern", modern),))
    assert "web" not in plan


def test_no_tls_options_no_plan(tmp_path: Path) -> None:
    errors, result = _compile(tmp_path, BASE.split("tls_options")[0])
    assert errors == [] and result.graph is not None
    assert tls_options_plan(result.graph) == {}


def test_each_error_at_its_line(tmp_path: Path) -> None:
    text = (
        BASE
        + http("unknown", "Host(`u.test`)", "moderne")  # lines 22-27
        + http("nohost", "PathPrefix(`/`)", "modern")  # 28-33
        + http("plain", "Host(`p.test`)", "modern", '["web"]')  # 34-39
        + http("first", "Host(`x.test`)", "modern")  # 40-45
        + http("second", "Host(`y.test`) || Host(`X.test`)", "mtls")  # 46-51
        + 'tls_options "ciphers" {\n  cipher_suites = ["TLS_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA25"]\n}\n'
    )
    errors, _ = _compile(tmp_path, text)
    assert errors == [
        "53:20 tls_options 'ciphers': unknown TLS 1.2 cipher suite 'TLS_AES_128_GCM_SHA256'",
        "53:46 tls_options 'ciphers': unknown TLS 1.2 cipher suite 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA25'",
        "26:9 router 'unknown' uses unknown TLS options 'moderne'",
        "29:3 router 'nohost' uses TLS options 'modern' but its rule names no host: the handshake "
        "chooses options by SNI, and no SNI would choose these",
        "38:9 router 'plain' uses TLS options 'modern' but none of its entrypoints has a tls block",
        "50:9 router 'second' gives host 'x.test' TLS options 'mtls' on entrypoint 'websecure', "
        "but router 'first' gives it 'modern'",
    ]


def test_client_auth_type_needs_ca_files_and_versions_must_be_ordered(tmp_path: Path) -> None:
    text = (
        BASE
        + """tls_options "versions" {
  min_version = "1.3"
  max_version = "1.2"
}
tls_options "bad" {
  client_auth { client_auth_type = "VerifyClientCertIfGiven" }
}
tls_options "unsupported" {
  client_auth {
    ca_files = ["ca.pem"]
    client_auth_type = "RequireAnyClientCert"
  }
}
"""
    )
    errors, _ = _compile(tmp_path, text)
    joined = "\n".join(errors)
    assert "min_version 1.3 is above max_version 1.2" in joined
    assert "client_auth_type VerifyClientCertIfGiven needs ca_files" in joined
    # Go's RequireAnyClientCert has no equivalent in Python's ssl
    assert "client_auth.client_auth_type: Input should be" in joined


def test_options_beside_acme_compile_and_on_passthrough_are_an_error(tmp_path: Path) -> None:
    text = (
        BASE
        + http("a", "Host(`a.test`)", "modern")
        + """
certificate_resolvers "le" {
  acme {
    storage = "acme.json"
    tls_challenge {}
  }
}
tcp_routers "pt" {
  rule    = "HostSNI(`pt.test`)"
  service = "pg"
  tls {
    passthrough = true
    options     = "modern"
  }
}
services "pg" {
  load_balancer { servers = [{ address = "127.0.0.1:5432" }] }
}
"""
    )
    errors, _ = _compile(tmp_path, text)
    joined = "\n".join(errors)
    assert "certificate resolvers" not in joined  # an ACME host gets its options too
    assert errors == [
        "40:5 TCP router 'pt' forwards TLS (passthrough), so it has no handshake for TLS options 'modern'"
    ]


def test_curve_preferences_unknown_or_unavailable_names_are_errors_at_their_item(tmp_path: Path) -> None:
    import ssl

    text = (
        BASE
        + """tls_options "curves" {
  curve_preferences = ["X25519", "CurveP265", "X25519MLKEM768"]
}
tls_options "none" {
  curve_preferences = []
}
"""
    )
    errors, _ = _compile(tmp_path, text)
    line = len(BASE.splitlines()) + 2
    assert f"{line}:34 tls_options 'curves': unknown curve 'CurveP265'" in errors
    assert f"{line + 3}:3 tls_options 'none': curve_preferences is empty" in errors
    mlkem = f"{line}:47 tls_options 'curves': curve 'X25519MLKEM768' is not implemented by the OpenSSL"
    # X25519MLKEM768 is a group of OpenSSL 3.5 and later only.
    assert any(e.startswith(mlkem) for e in errors) == (ssl.OPENSSL_VERSION_INFO < (3, 5)), errors


def test_curve_preferences_reach_the_plan_in_order(tmp_path: Path) -> None:
    text = BASE.replace('min_version = "1.3"', 'curve_preferences = ["CurveP384", "x25519"]') + http(
        "a", "Host(`a.test`)", "modern"
    )
    errors, result = _compile(tmp_path, text)
    assert errors == [] and result.graph is not None
    options = dict(tls_options_plan(result.graph)["websecure"].options)
    assert options["modern"].curve_preferences == ["CurveP384", "x25519"]


def test_client_auth_ca_files_take_pem_text_checked_at_compile_time(tmp_path: Path) -> None:
    from ..backends import make_certs

    ca = Path(make_certs(tmp_path, ["x.test"]).ca_file).read_text().replace("\n", "\\n")
    text = (
        BASE
        + f"""tls_options "inline" {{
  client_auth {{ ca_files = ["{ca}"] }}
}}
tls_options "broken" {{
  client_auth {{ ca_files = ["ca.pem", "-----BEGIN CERTIFICATE-----\\nnope\\n-----END CERTIFICATE-----\\n"] }}
}}
"""
    )
    errors, _ = _compile(tmp_path, text)
    line = len(BASE.splitlines()) + 5
    assert len(errors) == 1 and errors[0].startswith(
        f"{line}:39 tls_options 'broken': client_auth ca_files[1] is PEM text with no valid CA certificate "
        "(no start line: cadata does not contain a certificate)"
    ), errors
