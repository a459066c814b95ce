"""UDP entrypoints and routers compile (they are served), and what cannot act is an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from a3s_gateway.compiler import compile_config


def _errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "gw.hcl"
    path.write_text(text)
    result = compile_config([str(path)], {})
    return [f"{d.span.line}:{d.span.col} {d.message}" for d in result.diagnostics.errors if d.span]


UDP = """entrypoints "dns" {
  address  = "127.0.0.1:5353"
  protocol = "udp"
  udp_session_timeout_secs = 10
  udp_max_sessions = 500
}
services "dns" {
  load_balancer { servers = [{ address = "127.0.0.1:53" }] }
}
udp_routers "dns" { service = "dns" }
"""


def test_a_udp_entrypoint_and_router_compile(tmp_path: Path) -> None:
    assert _errors(tmp_path, UDP) == []


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            'udp_routers "again" { service = "dns" }\n',
            "10:1 udp router 'dns' and udp router 'again' both serve entrypoint 'dns'",
        ),
        (
            'services "web" {\n  load_balancer { servers = [{ url = "http://127.0.0.1:1" }] }\n}\n'
            'udp_routers "web" {\n  service = "web"\n  entrypoints = ["dns"]\n}\n',
            "15:3 udp router 'web' is UDP but service 'web' has HTTP servers",
        ),
        (
            'entrypoints "web" {\n  address = "127.0.0.1:8080"\n  udp_max_sessions = 5\n}\n',
            "13:3 entrypoint 'web': udp_max_sessions: only for UDP entrypoints (this one has protocol \"http\")",
        ),
    ],
)
def test_what_a_udp_router_cannot_do_is_an_error(tmp_path: Path, extra: str, expected: str) -> None:
    errors = _errors(tmp_path, UDP + extra)
    assert any(e.startswith(expected) for e in errors), errors


def test_an_active_health_check_on_a_udp_service_is_an_error(tmp_path: Path) -> None:
    text = UDP.replace("servers = [", 'health_check { interval = "5s" }\n    servers = [')
    errors = _errors(tmp_path, text)
    assert any("whose health_check probes by TCP" in e for e in errors), errors


@pytest.mark.parametrize("key", ['tls { cert_file = "c.pem"\n key_file = "k.pem" }', "max_connections = 5"])
def test_tls_and_max_connections_do_not_apply_to_a_udp_entrypoint(tmp_path: Path, key: str) -> None:
    errors = _errors(tmp_path, UDP.replace('protocol = "udp"', f'protocol = "udp"\n  {key}'))
    assert any("does not apply to UDP entrypoints" in e for e in errors), errors


def test_a_tcp_and_a_udp_entrypoint_may_share_an_address(tmp_path: Path) -> None:
    text = UDP + (
        'entrypoints "dns-tcp" {\n  address = "127.0.0.1:5353"\n  protocol = "tcp"\n}\n'
        'tcp_routers "dns" {\n  service = "dns"\n  entrypoints = ["dns-tcp"]\n}\n'
    )
    assert _errors(tmp_path, text) == []
