"""What the tests of the routing service kinds (privacy_router, kairos) share: compile errors of
a kind's block, the access log's entries, and a chat completion through the gateway."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import openai

from a3s_gateway.compiler import compile_config


def kind_errors(tmp_path: Path, kind: str, block: str, services: tuple[str, ...]) -> list[str]:
    """`line:col message` of each compile error of a file whose service "routed" is a `kind`
    service with `block` in it (line 7 is the block's first), beside pools named `services`."""
    path = tmp_path / "gw.hcl"
    pools = "".join(
        f'services "{name}" {{ load_balancer {{ servers = [{{ url = "http://127.0.0.1:1" }}] }} }}\n'
        for name in services
    )
    path.write_text(
        'entrypoints "web" { address = "127.0.0.1:0" }\n'
        'routers "r" {\n  rule = "PathPrefix(`/`)"\n  service = "routed"\n}\n'
        f'services "routed" {{\n  {kind} {{\n' + block + "\n  }\n}\n" + pools
    )
    result = compile_config([str(path)])
    return [f"{d.span.line}:{d.span.col} {d.message}" for d in result.diagnostics if d.severity == "error"]


def write_config(tmp_path: Path, port: int, rest: str) -> tuple[Path, Path]:
    """`gw.hcl` in `tmp_path`: an entrypoint on `port`, a JSON access log, metrics, then `rest`.
    (The file's path, the log's.)"""
    path, log = tmp_path / "gw.hcl", tmp_path / "access.log"
    path.write_text(
        f'entrypoints "web" {{ address = "127.0.0.1:{port}" }}\naccess_log {{ path = "{log}" }}\n'
        f"metrics {{\n  prometheus {{}}\n}}\n{rest}"
    )
    return path, log


def access_entries(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


async def chat(base: str, text: str) -> str:
    """A chat completion through the gateway at `base` with the openai SDK (in a thread): the
    answer's text (the fake upstreams say which one they are)."""

    def call() -> str:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0, timeout=20)
        reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": text}])
        return reply.choices[0].message.content or ""

    return await anyio.to_thread.run_sync(call)
