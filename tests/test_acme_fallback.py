"""Until an ACME certificate is issued: the self-signed fallback, or with `fallback = "refuse"` no
handshake at all for names no certificate covers (the ACME server here never answers)."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import anyio
import pytest

from a3s_gateway.compiler import compile_config
from a3s_gateway.runtime.gateway import Gateway

from .pebble_server import served_names
from .stubs import free_port, refusing_port

pytestmark = pytest.mark.anyio


def config(port: int, dead: int, storage: Path, fallback: str) -> str:
    return f"""
entrypoints "websecure" {{
  address = "127.0.0.1:{port}"
  tls {{ {fallback} }}
}}
certificate_resolvers "nowhere" {{
  acme {{
    directory = "https://127.0.0.1:{dead}/dir"
    storage   = "{storage}"
    tls_challenge {{ }}
  }}
}}
routers "app" {{
  rule    = "Host(`app.test`)"
  service = "ping@internal"
  tls {{ cert_resolver = "nowhere" }}
}}
"""


def _handshake_error(port: int, name: str) -> str | None:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        with sock, context.wrap_socket(sock, server_hostname=name):
            return None
    except ssl.SSLError as exc:
        return str(exc)


async def test_self_signed_until_issued_or_refused(tmp_path: Path) -> None:
    port = free_port()
    with refusing_port() as dead:
        path = tmp_path / "gw.hcl"
        path.write_text(config(port, dead, tmp_path / "acme.json", ""))
        async with Gateway(str(path)) as gateway:
            assert await served_names(port, "app.test") == ["a3s-gateway-default.invalid"]
            path.write_text(config(port, dead, tmp_path / "acme.json", 'fallback = "refuse"'))
            await gateway.reload(str(path))
            # Refused: the callback's unrecognized_name alert ends the handshake (anyio closes the
            # connection without flushing the alert, so the client reads an EOF).
            assert await anyio.to_thread.run_sync(_handshake_error, port, "app.test") is not None
            # The gateway is still up, the order still tried.
            assert gateway.health()["acme"]["nowhere"]["certificates"][0]["status"] in ("pending", "failing")


async def test_a_failed_reload_leaves_no_acme_state(tmp_path: Path) -> None:
    """The first resolver's manager is kept only at commit: a reload that fails to bind leaves the
    health API and the HTTP-01 answers as they were (no resolver, no tokens)."""
    port = free_port()
    with refusing_port() as dead, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        path = tmp_path / "gw.hcl"
        path.write_text(f'entrypoints "web" {{ address = "127.0.0.1:{free_port()}" }}\n')
        async with Gateway(str(path)) as gateway:
            path.write_text(config(taken.getsockname()[1], dead, tmp_path / "acme.json", ""))
            with pytest.raises(OSError):
                await gateway.reload(str(path))
            assert "acme" not in gateway.health() and gateway.acme_tokens() is None
            path.write_text(config(port, dead, tmp_path / "acme.json", ""))
            await gateway.reload(str(path))
            assert list(gateway.health()["acme"]) == ["nowhere"]


def test_fallback_only_where_acme_provides_every_certificate(tmp_path: Path) -> None:
    path = tmp_path / "gw.hcl"
    path.write_text(
        'entrypoints "websecure" {\n  address = "127.0.0.1:8443"\n'
        '  tls {\n    cert_file = "c.pem"\n    key_file  = "k.pem"\n    fallback  = "refuse"\n  }\n}\n'
    )
    errors = [
        f"{d.span.line}:{d.span.col} {d.message}" if d.span else d.message
        for d in compile_config([str(path)], {}).diagnostics.errors
    ]
    assert any(
        e.startswith("6:5 entrypoint 'websecure': fallback applies to an entrypoint") for e in errors
    ), errors
