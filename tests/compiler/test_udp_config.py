"""UDP (and TCP) entrypoints and routers compile (they are served), and what cannot act is an error."""

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


TCP = """entrypoints "db" {
  address  = "127.0.0.1:5432"
  protocol = "tcp"
}
services "db" {
  load_balancer { servers = [{ address = "127.0.0.1:5433" }] }
}
tcp_routers "db" {
  rule    = "HostSNI(`*`)"
  service = "db"
}
"""


@pytest.mark.parametrize(
    ("text", "old", "new", "expected"),
    [
        (
            UDP,
            "udp_max_sessions = 500",
            'timeouts { idle = "3s" }',
            "5:14 entrypoint 'dns': 'timeouts.idle' does not apply to UDP entrypoints",
        ),
        (
            UDP,
            "udp_max_sessions = 500",
            'trusted_proxies = ["10.0.0.0/8"]',
            "5:3 entrypoint 'dns': 'trusted_proxies' does not apply to UDP entrypoints",
        ),
        (
            TCP,
            'protocol = "tcp"',
            'protocol = "tcp"\n  timeouts { read_body = "5s" }',
            "4:14 entrypoint 'db': 'timeouts.read_body' does not apply to TCP entrypoints",
        ),
        (
            TCP,
            'protocol = "tcp"',
            'protocol = "tcp"\n  limits { header_bytes = 1000 }',
            "4:3 entrypoint 'db': 'limits' does not apply to TCP entrypoints",
        ),
        (
            TCP,
            "servers = [",
            'passive_health { failure_statuses = "502" }\n    servers = [',
            "6:36 service 'db': 'failure_statuses' applies to HTTP services only",
        ),
        (
            TCP,
            "load_balancer {",
            'timeouts { idle = "5s" }\n  load_balancer {',
            "6:14 service 'db': 'idle' applies to HTTP services only",
        ),
        (
            TCP,
            "servers = [",
            'sticky { cookie = "s" }\n    servers = [',
            "6:19 service 'db': 'sticky' applies to HTTP services only",
        ),
    ],
)
def test_a_key_an_l4_entrypoint_or_service_does_not_act_on_is_an_error(
    tmp_path: Path, text: str, old: str, new: str, expected: str
) -> None:
    """Keys that act on HTTP only would validate and do nothing on a TCP or UDP block."""
    assert old in text
    errors = _errors(tmp_path, text.replace(old, new, 1))
    assert any(e.startswith(expected) for e in errors), errors


def test_the_timeouts_an_l4_entrypoint_reads_compile(tmp_path: Path) -> None:
    text = TCP.replace(
        'protocol = "tcp"', 'protocol = "tcp"\n  timeouts {\n    read_header = "2s"\n    idle = "9s"\n  }'
    )
    assert _errors(tmp_path, text) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "load_balancer {",
            "proxy_protocol { version = 2 }\n  load_balancer {",
            "8:3 udp router 'dns' uses service 'dns', whose 'proxy_protocol' applies to TCP connections only",
        ),
        (
            "load_balancer {",
            'timeouts { termination_delay = "1s" }\n  load_balancer {',
            "8:14 udp router 'dns' uses service 'dns', whose 'timeouts.termination_delay' applies to TCP",
        ),
        (
            "load_balancer {",
            'ftp { passive_ports = "30000-30009" }\n  load_balancer {',
            "8:3 udp router 'dns' uses service 'dns', whose 'ftp' applies to TCP connections only",
        ),
    ],
)
def test_a_tcp_key_on_a_service_only_udp_routers_use_is_an_error(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    errors = _errors(tmp_path, UDP.replace(old, new, 1))
    assert any(e.startswith(expected) for e in errors), errors
    # Routed over TCP as well (DNS over TCP): the key acts there.
    tcp = 'entrypoints "dns-tcp" {\n  address = "127.0.0.1:5354"\n  protocol = "tcp"\n}\n'
    tcp += 'tcp_routers "dns" {\n  rule = "HostSNI(`*`)"\n  service = "dns"\n}\n'
    assert _errors(tmp_path, UDP.replace(old, new, 1) + tcp) == []


@pytest.mark.parametrize(
    ("ftp", "expected"),
    [
        ('passive_ports = "30000-30009"', None),
        ('passive_ports = "30000"', 'passive_ports is a range "first-last"'),
        ('passive_ports = "30009-30000"', "ports from 1024 to 65535, first <= last"),
        ('passive_ports = "80-90"', "ports from 1024 to 65535"),
        ('passive_ports = "30000-30009"\n    passive_address = "::1"', "passive_address is an IPv4 address"),
    ],
)
def test_a_tcp_service_ftp_block_is_checked(tmp_path: Path, ftp: str, expected: str | None) -> None:
    text = TCP.replace("load_balancer {", f"ftp {{\n    {ftp}\n  }}\n  load_balancer {{", 1)
    assert text != TCP
    errors = _errors(tmp_path, text)
    if expected is None:
        assert errors == []
    else:
        assert any(expected in e for e in errors), errors
