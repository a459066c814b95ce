"""channel-discord: Ed25519 over timestamp + body (checked with `cryptography`), the PING/PONG
handshake, interaction normalisation and interaction-id deduplication, through a real gateway.

Discord publishes no example signature: the tests sign with a key of their own, exactly as
Discord does (hex Ed25519 signature of the timestamp's bytes followed by the body's).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from a3s_gateway.stdlib.channels import discord
from a3s_gateway.stdlib.channels._event import Reply

from .agent_gateway import channel_gateway

pytestmark = pytest.mark.anyio

KEY = Ed25519PrivateKey.generate()
PUBLIC_HEX = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
MIDDLEWARE = f'type = "channel-discord"\n  public_key = "{PUBLIC_HEX}"'


def signed(body: bytes, *, key: Ed25519PrivateKey = KEY, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "x-signature-ed25519": key.sign(ts.encode() + body).hex(),
        "x-signature-timestamp": ts,
        "content-type": "application/json",
    }


def command(ident: str = "786008729715212338") -> bytes:
    """An APPLICATION_COMMAND interaction in a guild, shaped as Discord's docs show one."""
    return json.dumps(
        {
            "type": 2,
            "token": "A_UNIQUE_TOKEN",
            "id": ident,
            "application_id": "775799577604522054",
            "guild_id": "290926798626357999",
            "channel_id": "645027906669510667",
            "member": {"user": {"id": "53908232506183680", "username": "Mason"}, "roles": []},
            "data": {
                "id": "771825006014889984",
                "name": "ask",
                "type": 1,
                "options": [{"name": "question", "type": 3, "value": "what is up?"}],
                "resolved": {
                    "attachments": {
                        "1": {
                            "id": "1",
                            "filename": "a.png",
                            "content_type": "image/png",
                            "url": "https://cdn.discordapp.com/a.png",
                            "size": 3,
                        }
                    }
                },
            },
        }
    ).encode()


async def test_a_signed_command_reaches_the_agent_normalised(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        body = command()
        response = await client.post("/webhooks/discord", content=body, headers=signed(body))
        assert response.status_code == 200, response.text
        [event] = agent.events()
        assert {k: event[k] for k in ("platform", "type", "channel_id", "user_id", "message_id", "text")} == {
            "platform": "discord",
            "type": "command",
            "channel_id": "645027906669510667",
            "user_id": "53908232506183680",
            "message_id": "786008729715212338",
            "text": "/ask question=what is up?",
        }
        assert event["timestamp"] == ((786008729715212338 >> 22) + discord.DISCORD_EPOCH_MS) / 1000
        assert event["attachments"][0]["url"] == "https://cdn.discordapp.com/a.png"


async def test_ping_is_answered_with_pong_and_a_bad_ping_is_401(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        ping = b'{"type":1,"id":"1","application_id":"2","token":"t","version":1}'
        pong = await client.post("/webhooks/discord", content=ping, headers=signed(ping))
        assert pong.status_code == 200 and pong.json() == {"type": 1}
        forged = await client.post(
            "/webhooks/discord", content=ping, headers=signed(ping, key=Ed25519PrivateKey.generate())
        )
        assert forged.status_code == 401
        assert agent.seen == []


async def test_bad_signature_and_stale_timestamp_are_401(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        body = command()
        other = Ed25519PrivateKey.generate()
        assert (
            await client.post("/webhooks/discord", content=body, headers=signed(body, key=other))
        ).status_code == 401
        garbage = signed(body) | {"x-signature-ed25519": "zz"}
        assert (await client.post("/webhooks/discord", content=body, headers=garbage)).status_code == 401
        old = signed(body, timestamp=int(time.time()) - 3600)
        stale = await client.post("/webhooks/discord", content=body, headers=old)
        assert stale.status_code == 401 and "stale" in stale.json()["error"]["message"]
        assert agent.seen == []


async def test_a_replayed_interaction_id_is_not_forwarded_twice(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        body = command("900000000000000001")
        for _ in range(2):
            assert (
                await client.post("/webhooks/discord", content=body, headers=signed(body))
            ).status_code == 200
        assert len(agent.seen) == 1


def test_components_and_modals_normalise() -> None:
    component = discord.normalise(
        {
            "type": 3,
            "id": "5",
            "channel_id": "9",
            "user": {"id": "7"},
            "message": {"id": "3"},
            "data": {"custom_id": "approve", "component_type": 2},
        }
    )
    assert not isinstance(component, Reply)
    assert (component.type, component.text, component.user_id, component.reply_to) == (
        "component",
        "approve",
        "7",
        "3",
    )
    modal = discord.normalise(
        {
            "type": 5,
            "id": "6",
            "data": {
                "custom_id": "m",
                "components": [
                    {"type": 1, "components": [{"type": 4, "custom_id": "a", "value": "first"}]},
                    {"type": 1, "components": [{"type": 4, "custom_id": "b", "value": "second"}]},
                ],
            },
        }
    )
    assert not isinstance(modal, Reply) and modal.text == "first\nsecond"
