"""TCP entrypoints end to end: real clients, a real gateway, real echo backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from .tcp_peers import echo_server, free_port, serving, talk

pytestmark = pytest.mark.anyio


def plain(port: int, backends: list[int], *, extra: str = "", entrypoint: str = "") -> str:
    servers = ", ".join(f'{{ address = "127.0.0.1:{p}" }}' for p in backends)
    return f"""
entrypoints "tcp" {{
  address  = "127.0.0.1:{port}"
  protocol = "tcp"
  {entrypoint}
}}
tcp_routers "all" {{
  rule    = "HostSNI(`*`)"
  service = "echo"
}}
services "echo" {{
  load_balancer {{ servers = [{servers}] }}
}}
{extra}
"""


async def test_a_plaintext_connection_is_relayed_both_ways(tmp_path: Path) -> None:
    async with echo_server() as echo:
        port = free_port()
        async with serving(tmp_path, plain(port, [echo.port])):
            assert await talk(port, b"hello") == b"hello"
            payload = bytes(range(256)) * 4096  # 1 MiB
            assert await talk(port, payload) == payload
            assert echo.connections == 2
