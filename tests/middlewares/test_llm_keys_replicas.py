"""llm-keys across replicas: two `a3s-gateway run` processes (one on asyncio, one on trio) share
one real redis-server. Concurrent streaming clients, spread over both, are admitted within one
TPM limit and one budget (up to one request's worth), and a key created through one gateway's
admin API works on the other.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import openai
import pytest

from ..llm_fakes import FakeLlm, fake_llm, gateway_hcl
from ..stubs import free_ports

pytestmark = pytest.mark.anyio

GATEWAY = str(Path(sys.executable).with_name("a3s-gateway"))
MESSAGES = [{"role": "user", "content": "hi"}]
# What one request really costs: the fake reports 10 prompt tokens and max_tokens (20) output.
PER_REQUEST = 30


def config(port: int, admin_port: int, llm: FakeLlm, redis_url: str, prefix: str) -> str:
    keys = f"""
  redis_url  = "{redis_url}"
  key_prefix = "{prefix}"
  keys "team" {{
    key = "sk-team-0123456789abcdef"
    tpm = 300
  }}
  keys "solo" {{
    key    = "sk-solo-0123456789abcdef"
    budget = 200
  }}
"""
    return gateway_hcl(port, llm.url, keys, extra=f'api {{\n  address = "127.0.0.1:{admin_port}"\n}}')


@asynccontextmanager
async def two_gateways(tmp_path: Path, redis_url: str) -> AsyncIterator[tuple[list[int], list[int]]]:
    """Two gateway processes on one Redis namespace; yields their ports and admin ports."""
    prefix = f"test:{uuid.uuid4().hex}:"
    async with fake_llm(delay=0.005, words=50) as llm:
        ports, admins, procs = [], [], []
        try:
            for backend in ("asyncio", "trio"):
                port, admin = free_ports(2)
                path = tmp_path / f"{backend}.hcl"
                path.write_text(config(port, admin, llm, redis_url, prefix))
                args = [GATEWAY, "run", "--config", str(path), "--backend", backend]
                procs.append(subprocess.Popen(args, stderr=subprocess.DEVNULL, start_new_session=True))
                ports.append(port)
                admins.append(admin)
            for admin in admins:
                await _serving(admin)
            yield ports, admins
        finally:
            for proc in procs:
                os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                await anyio.to_thread.run_sync(proc.wait)


async def _serving(admin_port: int) -> None:
    async with httpx.AsyncClient() as client:
        with anyio.fail_after(30):
            while True:
                try:
                    if (await client.get(f"http://127.0.0.1:{admin_port}/ping")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await anyio.sleep(0.05)


async def stream_many(ports: list[int], key: str, n: int) -> tuple[int, int]:
    """`n` concurrent streaming completions spread over `ports`: (tokens used by the admitted, refused)."""
    clients = [
        openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{p}/v1", api_key=key, max_retries=0) for p in ports
    ]
    used, refused = [], []

    async def one(i: int) -> None:
        try:
            stream = await clients[i % len(clients)].chat.completions.create(
                model="gpt-4o",
                messages=MESSAGES,  # type: ignore[arg-type]
                stream=True,
                max_tokens=20,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                if chunk.usage is not None:
                    used.append(chunk.usage.total_tokens)
        except openai.RateLimitError:
            refused.append(i)

    try:
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(one, i)
    finally:
        for client in clients:
            await client.close()
    assert len(used) + len(refused) == n
    return sum(used), len(refused)


async def drain(ports: list[int], key: str) -> int:
    """Waves of 10 concurrent streams until a wave gets nothing in: the tokens used by all."""
    total = 0
    for _ in range(30):
        used, refused = await stream_many(ports, key, 10)
        total += used
        if used == 0:
            return total
        assert refused > 0 or total <= 300  # a wave of 10 passing whole would cost 300
    raise AssertionError("the limit never closed")


async def test_one_tpm_and_one_budget_across_two_gateway_processes(tmp_path: Path, redis_url: str) -> None:
    async with two_gateways(tmp_path, redis_url) as (ports, _admins):
        # Each request is billed 30 tokens but reserves ~60 while it streams: no limit is passed,
        # and the last refusal came when less than a reservation (two requests' worth) was left.
        used = await drain(ports, "sk-team-0123456789abcdef")
        assert 300 - 2 * PER_REQUEST < used <= 300 + PER_REQUEST
        spent = await drain(ports, "sk-solo-0123456789abcdef")
        assert 200 - 2 * PER_REQUEST < spent <= 200 + PER_REQUEST


async def test_a_key_created_on_one_gateway_works_on_the_other(tmp_path: Path, redis_url: str) -> None:
    async with two_gateways(tmp_path, redis_url) as (ports, admins), httpx.AsyncClient() as admin:
        created = await admin.post(
            f"http://127.0.0.1:{admins[0]}/api/gateway/keys", json={"name": "new", "models": ["gpt-*"]}
        )
        assert created.status_code == 201
        secret = created.json()["key"]
        used, refused = await stream_many(ports[1:], secret, 1)
        assert used == PER_REQUEST and refused == 0
        listed = (await admin.get(f"http://127.0.0.1:{admins[1]}/api/gateway/keys")).json()["keys"]
        assert [k["name"] for k in listed] == ["solo", "team", "new"]
        assert (await admin.delete(f"http://127.0.0.1:{admins[1]}/api/gateway/keys/new")).status_code == 200
        client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{ports[1]}/v1", api_key=secret, max_retries=0)
        try:
            with pytest.raises(openai.AuthenticationError):  # the revoking replica forgets it at once
                await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
        finally:
            await client.close()
