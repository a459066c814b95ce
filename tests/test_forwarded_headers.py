"""X-Forwarded-* through a running gateway, as Traefik does it.

An untrusted client's forwarding claims are dropped at the entrypoint, before any middleware; a
value a middleware sets (the A3S docs' `request_headers = { "X-Forwarded-Proto" = "https" }`) is
kept; a trusted proxy's values are kept and extended.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from a3s_gateway.runtime.gateway import Gateway

from .backends import backend
from .stubs import free_port

pytestmark = pytest.mark.anyio


def _config(port: int, upstream: str, trusted: str, middleware: bool) -> str:
    chain = 'middlewares = ["proto"]' if middleware else ""
    return f"""
entrypoints "web" {{
  address         = "127.0.0.1:{port}"
  trusted_proxies = [{trusted}]
}}
routers "all" {{
  rule    = "PathPrefix(`/`)"
  service = "app"
  {chain}
}}
services "app" {{
  load_balancer {{ servers = [{{ url = "{upstream}" }}] }}
}}
middlewares "proto" {{ type = "headers"; request_headers = {{ "X-Forwarded-Proto" = "https" }} }}
"""


SPOOF = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "gopher", "X-Real-IP": "6.6.6.6"}


async def test_untrusted_claims_dropped_and_middleware_value_kept(tmp_path: Path) -> None:
    port = free_port()
    async with backend() as be:
        path = tmp_path / "gw.hcl"
        path.write_text(_config(port, be.url, "", middleware=True))
        async with Gateway(str(path)), httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{port}/json", headers=SPOOF)
        assert r.status_code == 200
        seen = be.seen[-1]
        assert seen.header("x-forwarded-proto") == "https"  # the middleware's value, not the client's
        assert seen.header("x-forwarded-for") == "127.0.0.1"  # the spoofed hop is gone
        assert seen.header("x-real-ip") == "127.0.0.1"


async def test_trusted_proxy_claims_kept_and_extended(tmp_path: Path) -> None:
    port = free_port()
    async with backend() as be:
        path = tmp_path / "gw.hcl"
        path.write_text(_config(port, be.url, '"127.0.0.1/32"', middleware=False))
        async with Gateway(str(path)), httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{port}/json", headers=SPOOF)
        assert r.status_code == 200
        seen = be.seen[-1]
        assert seen.header("x-forwarded-proto") == "gopher"
        assert seen.header("x-forwarded-for") == "6.6.6.6, 127.0.0.1"
        assert seen.header("x-real-ip") == "6.6.6.6"
