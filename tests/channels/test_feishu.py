"""channel-feishu: the verification token, encrypted events (AES-256-CBC, key = SHA-256 of the
Encrypt Key), the X-Lark-Signature with its timestamp, the challenge handshake (plain and
encrypted) and event_id deduplication, through a real gateway.

The first test decrypts Feishu's own published example ("test key" -> "hello world").
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from base64 import b64encode
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from a3s_gateway.stdlib.channels import feishu

from .agent_gateway import channel_gateway

pytestmark = pytest.mark.anyio

TOKEN = "kvcJzwJ1OLIw3lPyRHWdvcfIwQQHyCjr"
ENCRYPT_KEY = "e2e-encrypt-key"
PLAIN = f'type = "channel-feishu"\n  verification_token = "{TOKEN}"'
ENCRYPTED = f'type = "channel-lark"\n  verification_token = "{TOKEN}"\n  encrypt_key = "{ENCRYPT_KEY}"'


def test_feishus_published_decryption_example() -> None:
    key = hashlib.sha256(b"test key").digest()
    assert feishu.decrypt_event(key, "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=") == b"hello world"


def encrypt(payload: dict[str, Any], key: str = ENCRYPT_KEY) -> bytes:
    """As Feishu encrypts: base64(iv + AES-256-CBC(SHA-256(key), iv, PKCS#7(json)))."""
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(json.dumps(payload).encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(hashlib.sha256(key.encode()).digest()), modes.CBC(iv)).encryptor()
    data = iv + encryptor.update(plain) + encryptor.finalize()
    return json.dumps({"encrypt": b64encode(data).decode()}).encode()


def signed(body: bytes, *, key: str = ENCRYPT_KEY, timestamp: int | None = None) -> dict[str, str]:
    ts, nonce = str(int(time.time()) if timestamp is None else timestamp), "13341418"
    digest = hashlib.sha256((ts + nonce + key).encode() + body).hexdigest()
    return {
        "x-lark-request-timestamp": ts,
        "x-lark-request-nonce": nonce,
        "x-lark-signature": digest,
        "content-type": "application/json",
    }


def message_event(event_id: str = "5e3702a84e847582be8db7fb73283c02", token: str = TOKEN) -> dict[str, Any]:
    """An im.message.receive_v1 event (schema 2.0) as Feishu documents it."""
    return {
        "schema": "2.0",
        "header": {
            "event_id": event_id,
            "event_type": "im.message.receive_v1",
            "create_time": "1608725989000",
            "token": token,
            "app_id": "cli_9f5343c580712544",
            "tenant_key": "2ca1d211f64f6438",
        },
        "event": {
            "sender": {
                "sender_id": {"union_id": "on_8ed6", "user_id": "e33ggbyz", "open_id": "ou_84aad35d"},
                "sender_type": "user",
                "tenant_key": "736588c9260f175d",
            },
            "message": {
                "message_id": "om_5ce6d572455d361153b7cb51da133945",
                "root_id": "om_root",
                "parent_id": "om_parent",
                "create_time": "1609073151345",
                "chat_id": "oc_5ce6d572455d361153b7xx51da133945",
                "chat_type": "group",
                "message_type": "text",
                "content": '{"text":"@_user_1 hello"}',
            },
        },
    }


async def test_a_plain_event_with_the_right_token_is_forwarded_normalised(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, PLAIN) as (client, agent, _):
        response = await client.post("/webhooks/feishu", json=message_event())
        assert response.status_code == 200, response.text
        [event] = agent.events()
        assert {k: v for k, v in event.items() if k != "raw"} == {
            "platform": "feishu",
            "type": "im.message.receive_v1",
            "channel_id": "oc_5ce6d572455d361153b7xx51da133945",
            "user_id": "ou_84aad35d",
            "message_id": "om_5ce6d572455d361153b7cb51da133945",
            "text": "@_user_1 hello",
            "attachments": [],
            "reply_to": "om_parent",
            "timestamp": 1609073151.345,
        }
        wrong = await client.post("/webhooks/feishu", json=message_event("other", token="wrong"))
        assert wrong.status_code == 401 and len(agent.seen) == 1


async def test_the_challenge_is_echoed_plain_and_encrypted(tmp_path: Path) -> None:
    challenge = {"challenge": "ajls384kdjx98XX", "token": TOKEN, "type": "url_verification"}
    async with channel_gateway(tmp_path, PLAIN) as (client, agent, _):
        response = await client.post("/webhooks/feishu", json=challenge)
        assert response.status_code == 200 and response.json() == {"challenge": "ajls384kdjx98XX"}
        bad = await client.post("/webhooks/feishu", json=challenge | {"token": "nope"})
        assert bad.status_code == 401
    async with channel_gateway(tmp_path, ENCRYPTED) as (client, agent, _):
        response = await client.post("/webhooks/feishu", content=encrypt(challenge))
        assert response.status_code == 200 and response.json() == {"challenge": "ajls384kdjx98XX"}
        other_key = await client.post("/webhooks/feishu", content=encrypt(challenge, key="another key"))
        assert other_key.status_code == 401
        assert agent.seen == []


async def test_encrypted_events_need_a_fresh_valid_signature(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, ENCRYPTED) as (client, agent, _):
        body = encrypt(message_event())
        good = await client.post("/webhooks/feishu", content=body, headers=signed(body))
        assert good.status_code == 200, good.text
        assert agent.events()[0]["text"] == "@_user_1 hello"
        body = encrypt(message_event("e2"))
        forged = await client.post("/webhooks/feishu", content=body, headers=signed(body, key="guess"))
        stale = await client.post(
            "/webhooks/feishu", content=body, headers=signed(body, timestamp=int(time.time()) - 7200)
        )
        unsigned = await client.post("/webhooks/feishu", content=body)
        plain = await client.post("/webhooks/feishu", json=message_event("e3"))
        assert [r.status_code for r in (forged, stale, unsigned, plain)] == [401] * 4
        assert "stale" in stale.json()["error"]["message"]
        assert len(agent.seen) == 1


async def test_a_replayed_event_id_is_not_forwarded_twice(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, ENCRYPTED) as (client, agent, _):
        for event_id in ("a", "a", "b"):
            body = encrypt(message_event(event_id))  # a retry is encrypted afresh: a new IV
            assert (
                await client.post("/webhooks/feishu", content=body, headers=signed(body))
            ).status_code == 200
        assert [e["raw"]["header"]["event_id"] for e in agent.events()] == ["a", "b"]


def test_posts_and_images_normalise() -> None:
    event = message_event()
    message = event["event"]["message"]
    message["message_type"] = "post"
    message["content"] = json.dumps(
        {
            "title": "Plan",
            "content": [
                [{"tag": "text", "text": "step "}, {"tag": "a", "text": "one", "href": "x"}],
                [{"tag": "img", "image_key": "img_v2_1"}],
            ],
        }
    )
    normalised = feishu.normalise(event)
    assert normalised.text == "Plan\nstep one"
    assert normalised.attachments == [{"type": "image", "id": "img_v2_1"}]
