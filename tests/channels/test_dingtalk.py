"""channel-dingtalk: the `sign` header (base64 HMAC-SHA256 of "timestamp\\nsecret") with its
one-hour window, message normalisation and msgId deduplication, through a real gateway.

DingTalk has no handshake, so there is no challenge case for it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest

from a3s_gateway.stdlib.channels import dingtalk
from a3s_gateway.stdlib.channels._event import Rejected

from .agent_gateway import channel_gateway

pytestmark = pytest.mark.anyio

SECRET = "dingtalk-app-secret-0123456789"
MIDDLEWARE = f'type = "channel-dingtalk"\n  app_secret = "{SECRET}"'


def signed(*, secret: str = SECRET, ms: int | None = None) -> dict[str, str]:
    """The headers as DingTalk's own Python sample computes them."""
    timestamp = str(round(time.time() * 1000) if ms is None else ms)
    string_to_sign = f"{timestamp}\n{secret}"
    digest = hmac.new(
        secret.encode("utf-8"), string_to_sign.encode("utf-8"), digestmod=hashlib.sha256
    ).digest()
    return {
        "timestamp": timestamp,
        "sign": base64.b64encode(digest).decode(),
        "content-type": "application/json",
    }


def message(msg_id: str = "msgXYZ==") -> bytes:
    """A group text message to the robot, as DingTalk's docs show one."""
    return json.dumps(
        {
            "conversationId": "cidrwPqwnBqk4Vm21hS1oEa4Q==",
            "atUsers": [{"dingtalkId": "$:LWCP_v1:$abc"}],
            "chatbotUserId": "$:LWCP_v1:$bot",
            "msgId": msg_id,
            "senderNick": "Alice",
            "isAdmin": True,
            "senderStaffId": "manager7140",
            "sessionWebhookExpiredTime": 1700003600000,
            "createAt": 1700000000123,
            "conversationType": "2",
            "senderId": "$:LWCP_v1:$alice",
            "conversationTitle": "agents",
            "isInAtList": True,
            "sessionWebhook": "https://oapi.dingtalk.com/robot/sendBySession?session=x",
            "text": {"content": " what is the weather"},
            "robotCode": "dingbot",
            "msgtype": "text",
        },
        ensure_ascii=False,
    ).encode()


def test_the_signature_is_the_one_dingtalk_computes() -> None:
    headers = signed(ms=1700000000000)
    assert dingtalk.signature(SECRET, "1700000000000") == headers["sign"]
    dingtalk.check(SECRET, "1700000000000", headers["sign"], 1700000000.0 + 3599, 3600)
    with pytest.raises(Rejected, match="stale"):
        dingtalk.check(SECRET, "1700000000000", headers["sign"], 1700000000.0 + 3601, 3600)


async def test_a_signed_message_reaches_the_agent_normalised(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        response = await client.post("/webhooks/dingtalk", content=message(), headers=signed())
        assert response.status_code == 200, response.text
        [event] = agent.events()
        assert {k: v for k, v in event.items() if k != "raw"} == {
            "platform": "dingtalk",
            "type": "text",
            "channel_id": "cidrwPqwnBqk4Vm21hS1oEa4Q==",
            "user_id": "manager7140",
            "message_id": "msgXYZ==",
            "text": "what is the weather",
            "attachments": [],
            "reply_to": None,
            "timestamp": 1700000000.123,
        }


async def test_bad_signature_and_stale_timestamp_are_401(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        forged = await client.post("/webhooks/dingtalk", content=message(), headers=signed(secret="nope"))
        hour_ago = round(time.time() * 1000) - 3_601_000
        stale = await client.post("/webhooks/dingtalk", content=message(), headers=signed(ms=hour_ago))
        missing = await client.post("/webhooks/dingtalk", content=message())
        assert forged.status_code == stale.status_code == missing.status_code == 401
        assert "stale" in stale.json()["error"]["message"]
        assert agent.seen == []


async def test_a_replayed_msg_id_is_not_forwarded_twice(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        for msg_id in ("m1", "m1", "m2"):
            assert (
                await client.post("/webhooks/dingtalk", content=message(msg_id), headers=signed())
            ).status_code == 200
        assert [e["message_id"] for e in agent.events()] == ["m1", "m2"]
