"""channel-wecom: msg_signature (SHA-1 over the sorted token, timestamp, nonce and payload),
AES-256-CBC decryption with the receiver id, the echostr URL verification, message
normalisation and MsgId deduplication, through a real gateway.

The first test is WeCom's published sample (the WXBizMsgCrypt samples' VerifyURL example:
token QDG6eK, receiver wx5823bf96d3bd56c7), run through the verifier and, with its timestamp
accepted, through a real gateway.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from a3s_gateway.stdlib.channels import wecom
from a3s_gateway.stdlib.channels._event import Rejected

from .agent_gateway import channel_gateway

pytestmark = pytest.mark.anyio

SAMPLE = {
    "token": "QDG6eK",
    "aes_key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
    "corp_id": "wx5823bf96d3bd56c7",
    "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
    "timestamp": "1409659589",
    "nonce": "263014780",
    "echostr": "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
}
TOKEN, AES_KEY, CORP_ID = "e2eToken", base64.b64encode(os.urandom(32)).decode()[:-1], "ww1436e0e65a779aee"
MIDDLEWARE = (
    f'type = "channel-wecom"\n  token = "{TOKEN}"\n  encoding_aes_key = "{AES_KEY}"\n  corp_id = "{CORP_ID}"'
)


def test_wecoms_published_url_verification_sample() -> None:
    s = SAMPLE
    assert wecom.signature(s["token"], s["timestamp"], s["nonce"], s["echostr"]) == s["msg_signature"]
    key = base64.b64decode(s["aes_key"] + "=")
    assert wecom.open_message(key, s["echostr"], s["corp_id"]) == "1616140317555161061"
    with pytest.raises(Rejected, match="another receiver"):
        wecom.open_message(key, s["echostr"], "ww-someone-else")


async def test_the_published_sample_through_a_gateway(tmp_path: Path) -> None:
    s = SAMPLE
    config = (
        f'type = "channel-wecom"\n  token = "{s["token"]}"\n  encoding_aes_key = "{s["aes_key"]}"\n'
        f'  corp_id = "{s["corp_id"]}"\n  max_age = "{int(time.time()) - 1409659589 + 3600}s"'
    )
    async with channel_gateway(tmp_path, config) as (client, agent, _):
        query = urlencode({k: s[k] for k in ("msg_signature", "timestamp", "nonce", "echostr")})
        response = await client.get(f"/webhooks/wecom?{query}")
        assert response.status_code == 200 and response.text == "1616140317555161061"
        assert agent.seen == []


def seal(message: str, *, key: str = AES_KEY, corp_id: str = CORP_ID) -> str:
    """As WXBizMsgCrypt encrypts: random(16) + length + message + receiver id, PKCS#7 to 32."""
    raw = base64.b64decode(key + "=")
    data = os.urandom(16) + struct.pack(">I", len(message.encode())) + message.encode() + corp_id.encode()
    pad = 32 - len(data) % 32
    data += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(raw), modes.CBC(raw[:16])).encryptor()
    return base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode()


def signed_query(encrypted: str, *, token: str = TOKEN, timestamp: int | None = None, **extra: str) -> str:
    ts, nonce = str(int(time.time()) if timestamp is None else timestamp), "1372623149"
    sig = hashlib.sha1("".join(sorted((token, ts, nonce, encrypted))).encode()).hexdigest()
    return urlencode({"msg_signature": sig, "timestamp": ts, "nonce": nonce, **extra})


def text_message(msg_id: str = "1234567890123456") -> str:
    return (
        "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName><FromUserName><![CDATA[zhangsan]]>"
        "</FromUserName><CreateTime>1348831860</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[你好 agent]]></Content><MsgId>{msg_id}</MsgId><AgentID>1000002</AgentID></xml>"
    )


def envelope(encrypted: str) -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><AgentID><![CDATA[1000002]]></AgentID>"
        f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    ).encode()


async def test_a_signed_encrypted_message_reaches_the_agent_normalised(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        encrypted = seal(text_message())
        response = await client.post(
            f"/webhooks/wecom?{signed_query(encrypted)}", content=envelope(encrypted)
        )
        assert response.status_code == 200, response.text
        [event] = agent.events()
        assert {k: v for k, v in event.items() if k != "raw"} == {
            "platform": "wecom",
            "type": "text",
            "channel_id": "1000002",
            "user_id": "zhangsan",
            "message_id": "1234567890123456",
            "text": "你好 agent",
            "attachments": [],
            "reply_to": None,
            "timestamp": 1348831860,
        }
        assert event["raw"]["ToUserName"] == CORP_ID


async def test_url_verification_echoes_the_decrypted_echostr(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        echostr = seal("5927782489442352469")
        response = await client.get(f"/webhooks/wecom?{signed_query(echostr, echostr=echostr)}")
        assert response.status_code == 200 and response.text == "5927782489442352469"
        forged = await client.get(f"/webhooks/wecom?{signed_query(echostr, token='x', echostr=echostr)}")
        assert forged.status_code == 401
        assert agent.seen == []


async def test_bad_signature_stale_timestamp_wrong_key_and_receiver_are_401(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        encrypted = seal(text_message())
        cases = [
            (signed_query(encrypted, token="guess"), encrypted),
            (signed_query(encrypted, timestamp=int(time.time()) - 600), encrypted),
        ]
        other_key = seal(text_message(), key=base64.b64encode(os.urandom(32)).decode()[:-1])
        cases.append((signed_query(other_key), other_key))
        other_corp = seal(text_message(), corp_id="ww-other")
        cases.append((signed_query(other_corp), other_corp))
        for query, payload in cases:
            response = await client.post(f"/webhooks/wecom?{query}", content=envelope(payload))
            assert response.status_code == 401, (query, response.text)
        assert agent.seen == []


async def test_a_replayed_msg_id_is_not_forwarded_twice(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        for msg_id in ("1", "1", "2"):
            encrypted = seal(text_message(msg_id))
            response = await client.post(
                f"/webhooks/wecom?{signed_query(encrypted)}", content=envelope(encrypted)
            )
            assert response.status_code == 200
        assert [e["message_id"] for e in agent.events()] == ["1", "2"]


async def test_an_xml_bomb_is_refused_before_anything_else(tmp_path: Path) -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><xml><Encrypt>&b;</Encrypt></xml>'
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        response = await client.post(f"/webhooks/wecom?{signed_query('x')}", content=bomb)
        assert response.status_code == 400 and agent.seen == []
