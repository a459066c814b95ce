"""A real gateway with one channel middleware in front of a real agent backend (tests/stubs.py's
JSON stub), for the channel tests: each test signs requests the way the platform does, sends
them with httpx and looks at what the agent received."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from a3s_gateway.runtime.gateway import Gateway

from ..stubs import free_port, json_stub


@dataclass
class Agent:
    """The backend: every request it got, and the status it answers with (settable)."""

    seen: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        with self.lock:
            self.seen.append({"method": method, "path": path, "headers": headers, "body": body})
            return self.status, {"ok": True}

    def events(self) -> list[dict[str, Any]]:
        """The JSON bodies the agent received, in order."""
        return [json.loads(request["body"]) for request in self.seen]


def config(port: int, agent_url: str, middleware: str, path: str = "/webhooks") -> str:
    return f"""
entrypoints "web" {{
  address = "127.0.0.1:{port}"
}}
services "agent" {{
  load_balancer {{
    servers = [{{ url = "{agent_url}" }}]
  }}
}}
routers "webhook" {{
  rule        = "PathPrefix(`{path}`)"
  service     = "agent"
  middlewares = ["channel"]
}}
middlewares "channel" {{
{middleware}
}}
"""


@asynccontextmanager
async def channel_gateway(
    tmp_path: Path, middleware: str, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, Agent, Gateway]]:
    """Gateway + agent with `middleware` (the body of `middlewares "channel" {}`) on /webhooks."""
    agent = Agent()
    with json_stub(agent.route) as agent_url:
        port = free_port()
        path = tmp_path / "gateway.hcl"
        path.write_text(config(port, agent_url, middleware))
        async with (
            Gateway(str(path), env=env) as gateway,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
        ):
            yield client, agent, gateway
