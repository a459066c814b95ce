"""channel-webchat: the gateway's own channel, with a signed JWT (HS256 or Ed25519) or an API
key, message normalisation (the user is the token's subject) and message-id deduplication,
through a real gateway. WebChat has no handshake; an expired token is its stale timestamp.
"""

from __future__ import annotations

import time
from pathlib import Path

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .agent_gateway import channel_gateway

pytestmark = pytest.mark.anyio

SECRET = "webchat-hs256-secret-long-enough-for-hs256-0123456789"
MIDDLEWARE = (
    f'type = "channel-webchat"\n  jwt_secret = "{SECRET}"\n  audience = "webchat"\n  api_keys = ["srv-key"]'
)


def token(
    sub: str = "visitor-42", *, secret: str = SECRET, exp: float | None = None, aud: str = "webchat"
) -> str:
    claims = {"sub": sub, "aud": aud, "exp": int(time.time() + 600 if exp is None else exp)}
    return pyjwt.encode(claims, secret, algorithm="HS256")


def message(message_id: str = "m-1", **extra: object) -> dict[str, object]:
    return {
        "message_id": message_id,
        "conversation_id": "conv-9",
        "text": "hi there",
        "reply_to": "m-0",
        "attachments": [{"type": "image", "id": "up-1", "url": "https://cdn.example/a.png"}],
        "timestamp": 1700000000.5,
        "user_id": "forged-user",
        **extra,
    }


async def test_a_token_holder_reaches_the_agent_as_the_tokens_subject(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        response = await client.post(
            "/webhooks/webchat", json=message(), headers={"authorization": f"Bearer {token()}"}
        )
        assert response.status_code == 200, response.text
        [request] = agent.seen
        assert "authorization" not in request["headers"]
        event = agent.events()[0]
        assert {k: v for k, v in event.items() if k != "raw"} == {
            "platform": "webchat",
            "type": "message",
            "channel_id": "conv-9",
            "user_id": "visitor-42",
            "message_id": "m-1",
            "text": "hi there",
            "reply_to": "m-0",
            "timestamp": 1700000000.5,
            "attachments": [{"type": "image", "id": "up-1", "url": "https://cdn.example/a.png"}],
        }


async def test_bad_expired_or_missing_credentials_are_401(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        cases = [
            {"authorization": f"Bearer {token(secret='another-secret-that-is-long-enough-0123456789')}"},
            {"authorization": f"Bearer {token(exp=time.time() - 1)}"},
            {"authorization": f"Bearer {token(aud='someone-else')}"},
            {"authorization": "Bearer not.a.token"},
            {"x-api-key": "wrong"},
            {},
        ]
        for headers in cases:
            response = await client.post("/webhooks/webchat", json=message(), headers=headers)
            assert response.status_code == 401, (headers, response.text)
        unauthenticated_garbage = await client.post("/webhooks/webchat", content=b"\x00not json")
        assert unauthenticated_garbage.status_code == 401
        assert agent.seen == []


async def test_an_api_key_client_names_the_user(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        response = await client.post("/webhooks/webchat", json=message(), headers={"x-api-key": "srv-key"})
        assert response.status_code == 200
        assert agent.events()[0]["user_id"] == "forged-user"
        assert "x-api-key" not in agent.seen[0]["headers"]


async def test_a_resent_message_id_is_not_forwarded_twice(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        headers = {"authorization": f"Bearer {token()}"}
        for ident in ("a", "a", "b"):
            assert (
                await client.post("/webhooks/webchat", json=message(ident), headers=headers)
            ).status_code == 200
        other_user = {"authorization": f"Bearer {token('visitor-7')}"}
        assert (
            await client.post("/webhooks/webchat", json=message("a"), headers=other_user)
        ).status_code == 200
        assert [(e["user_id"], e["message_id"]) for e in agent.events()] == [
            ("visitor-42", "a"),
            ("visitor-42", "b"),
            ("visitor-7", "a"),
        ]


async def test_eddsa_tokens_with_a_public_key(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    config = f'type = "channel-webchat"\n  jwt_public_key = <<EOT\n{pem}EOT'
    async with channel_gateway(tmp_path, config) as (client, agent, _):
        good = pyjwt.encode({"sub": "u1", "exp": int(time.time()) + 60}, key, algorithm="EdDSA")
        response = await client.post(
            "/webhooks/webchat", json=message(), headers={"authorization": f"Bearer {good}"}
        )
        assert response.status_code == 200, response.text
        hs = token()  # an HMAC token: this channel has no secret, so no HS algorithm
        refused = await client.post(
            "/webhooks/webchat", json=message("x"), headers={"authorization": f"Bearer {hs}"}
        )
        assert refused.status_code == 401
        assert [e["user_id"] for e in agent.events()] == ["u1"]
