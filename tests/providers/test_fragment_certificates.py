"""A provider's TLS certificates (`tls_certificates`, Kubernetes TLS Secrets) join every entrypoint
that terminates TLS, after its own; with no such entrypoint they are a warning, not served."""

from __future__ import annotations

from pathlib import Path

from a3s_gateway.compiler import compile_config
from a3s_gateway.compiler.fragment import Fragment

from ..backends import make_certs

CONFIG = """
entrypoints "websecure" {{
  address = "127.0.0.1:8443"
  tls {{
    cert_file = "{cert}"
    key_file  = "{key}"
  }}
}}
entrypoints "web" {{
  address = "127.0.0.1:8080"
}}
"""


def test_certificates_join_the_tls_entrypoints_after_their_own(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, ["default.test", "site.test"])
    path = tmp_path / "gw.hcl"
    path.write_text(CONFIG.format(cert=certs.leaves["default.test"][0], key=certs.leaves["default.test"][1]))
    site = {"cert_file": certs.leaves["site.test"][0], "key_file": certs.leaves["site.test"][1]}
    fragment = Fragment(
        "kubernetes", {"tls_certificates": [site]}, {("tls_certificates", 0): "Secret default/site"}
    )
    result = compile_config([str(path)], {}, [fragment])
    assert result.graph is not None
    entrypoints = {n.name: n.config for n in result.graph.nodes if n.kind == "entrypoint"}
    tls = entrypoints["websecure"].tls
    assert [c.cert_file for c in tls.all_certificates()] == [
        certs.leaves["default.test"][0],
        site["cert_file"],
    ]
    assert entrypoints["web"].tls is None


def test_without_a_tls_entrypoint_they_are_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "gw.hcl"
    path.write_text('entrypoints "web" {\n  address = "127.0.0.1:8080"\n}\n')
    fragment = Fragment("kubernetes", {"tls_certificates": [{"cert_file": "/x.crt", "key_file": "/x.key"}]})
    result = compile_config([str(path)], {}, [fragment])
    assert result.graph is not None
    (warning,) = [d for d in result.diagnostics if d.severity == "warning"]
    assert "gives 1 TLS certificate(s), but no entrypoint has a tls block" in warning.message
