"""What the provider tests share: the files' part of a configuration, and probes of a gateway."""

from __future__ import annotations

import anyio
import httpx

from a3s_gateway.runtime.gateway import Gateway

# The files' part: an entrypoint on {port} and the service `llm` with its router (a template:
# braces of HCL doubled).
FILES = """
entrypoints "web" {{
  address = "127.0.0.1:{port}"
}}
services "llm" {{
  load_balancer {{
    servers {{ url = "demo://llm" }}
  }}
}}
routers "llm" {{
  rule    = "PathPrefix(`/v1`)"
  service = "llm"
}}
"""


async def status(client: httpx.AsyncClient, port: int, path: str) -> int:
    return (await client.get(f"http://127.0.0.1:{port}{path}")).status_code


async def until_status(client: httpx.AsyncClient, port: int, path: str, expected: int) -> None:
    with anyio.fail_after(20):
        while await status(client, port, path) != expected:
            await anyio.sleep(0.05)


def routers(gateway: Gateway) -> set[str]:
    return {n.name for n in gateway.graph.ir.nodes if n.kind == "router"}


class Load:
    """Requests to `path`, one after another, until stopped: counted, and each non-200 kept."""

    def __init__(self, client: httpx.AsyncClient, port: int, path: str) -> None:
        self.client, self.port, self.path = client, port, path
        self.served = 0
        self.failures: list[int] = []
        self.stop = anyio.Event()

    async def run(self) -> None:
        while not self.stop.is_set():
            code = await status(self.client, self.port, self.path)
            self.served += 1
            if code != 200:
                self.failures.append(code)
            await anyio.sleep(0.01)
