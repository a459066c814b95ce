"""examples/agent-gateway.hcl as a whole, run with its environment contract: the agent's model
calls through it are classified by priority, queued, routed by privacy (a card number stays on
the local model servers, keys are redacted) and kept with their conversation on the local
servers. Its webhooks (Slack, Telegram to $AGENT_URL) are tested in
tests/channels/test_channel_core.py; each kind on its own in its own tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from a3s_gateway.runtime.gateway import Gateway

from .channels.agent_gateway import Agent
from .stubs import free_port, json_stub

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "agent-gateway.hcl"
MODELS = ("hosted", "local-1", "local-2")


@asynccontextmanager
async def agent_gateway() -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, Agent]]]:
    """The example with real backends for the agent and the three model servers."""
    seen = {name: Agent() for name in ("agent", *MODELS)}
    with ExitStack() as stack:
        urls = {name: stack.enter_context(json_stub(agent.route)) for name, agent in seen.items()}
        port = free_port()
        env = {
            "A3S_PORT": str(port),
            "SLACK_SIGNING_SECRET": "slack-secret",
            "TELEGRAM_SECRET_TOKEN": "telegram-secret",
            "AGENT_URL": urls["agent"],
            "HOSTED_URL": urls["hosted"],
            "LOCAL_URL_1": urls["local-1"],
            "LOCAL_URL_2": urls["local-2"],
        }
        async with (
            Gateway(str(EXAMPLE), env=env),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
        ):
            yield client, seen


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


def served_by(seen: dict[str, Agent]) -> list[str]:
    """Which model server got each request so far, in no particular order."""
    return sorted(name for name in MODELS for _ in seen[name].seen)


async def test_a_public_prompt_goes_to_the_hosted_api(anyio_backend: object) -> None:
    async with agent_gateway() as (client, seen):
        response = await client.post("/v1/chat/completions", json=chat("What is the capital of France?"))
        assert response.status_code == 200, response.text
        assert served_by(seen) == ["hosted"]
        assert seen["agent"].seen == []


async def test_a_card_number_stays_local_with_its_conversation(anyio_backend: object) -> None:
    async with agent_gateway() as (client, seen):
        for turn in range(4):
            response = await client.post(
                "/v1/chat/completions",
                json=chat(f"turn {turn}: my card is 4111 1111 1111 1111"),
                headers={"X-Conversation-Id": "chat-42", "X-Priority": "high"},
            )
            assert response.status_code == 200, response.text
        local = [name for name in ("local-1", "local-2") if seen[name].seen]
        assert len(local) == 1 and len(seen[local[0]].seen) == 4  # one server, the conversation's
        assert seen["hosted"].seen == []


async def test_a_key_in_a_prompt_is_redacted_and_stays_local(anyio_backend: object) -> None:
    key = "sk-" + "a1B2c3D4e5F6g7H8i9J0" * 2
    async with agent_gateway() as (client, seen):
        response = await client.post("/v1/chat/completions", json=chat(f"use the key {key} please"))
        assert response.status_code == 200, response.text
        (name,) = [n for n in MODELS if seen[n].seen]
        assert name != "hosted"
        body = seen[name].seen[0]["body"]
        assert key.encode() not in body
        assert "[REDACTED:api_key]" in json.loads(body)["messages"][0]["content"]


async def test_an_internal_project_name_stays_local(anyio_backend: object) -> None:
    async with agent_gateway() as (client, seen):
        text = "Summarise the status of Project Nightingale"
        response = await client.post("/v1/chat/completions", json=chat(text), headers={"X-Priority": "low"})
        assert response.status_code == 200, response.text
        assert served_by(seen) in (["local-1"], ["local-2"])
