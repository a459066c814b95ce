"""channel-slack: Slack's signing (v0 HMAC-SHA256, 5-minute window), its url_verification
handshake, event/command normalisation and event_id deduplication, through a real gateway.

The first test is Slack's own published example ("Verifying requests from Slack"): its signing
secret, timestamp, slash-command body and signature.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from a3s_gateway.stdlib.channels import slack
from a3s_gateway.stdlib.channels._event import ChannelEvent, Rejected

from .agent_gateway import channel_gateway

pytestmark = pytest.mark.anyio

# https://api.slack.com/authentication/verifying-requests-from-slack
DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DOC_TIMESTAMP = "1531420618"
DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
SECRET = "e2e-slack-signing-secret"
MIDDLEWARE = f'type = "channel-slack"\n  signing_secret = "{SECRET}"'


def test_slacks_published_example_verifies() -> None:
    assert slack.signature(DOC_SECRET, DOC_TIMESTAMP, DOC_BODY) == DOC_SIGNATURE
    now = int(DOC_TIMESTAMP) + 60
    slack.check(DOC_SECRET, DOC_TIMESTAMP, DOC_SIGNATURE, DOC_BODY, now, 300)
    with pytest.raises(Rejected, match="stale"):
        slack.check(DOC_SECRET, DOC_TIMESTAMP, DOC_SIGNATURE, DOC_BODY, now + 300, 300)
    with pytest.raises(Rejected, match="mismatch"):
        slack.check(DOC_SECRET, DOC_TIMESTAMP, DOC_SIGNATURE, DOC_BODY + b"x", now, 300)
    event = slack.normalise(slack.parse(DOC_BODY, "application/x-www-form-urlencoded"))
    assert isinstance(event, ChannelEvent)
    assert (event.type, event.text, event.channel_id, event.user_id) == (
        "command",
        "/webhook-collect",
        "G8PSS9T3V",
        "U2CERLKJA",
    )


def signed(body: bytes, *, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "x-slack-request-timestamp": ts,
        "x-slack-signature": slack.signature(secret, ts, body),
        "content-type": "application/json",
    }


def message_event(event_id: str = "Ev0PV52K21", text: str = "hello agent") -> bytes:
    return json.dumps(
        {
            "token": "legacy",
            "team_id": "T061EG9R6",
            "api_app_id": "A0PNCHHK2",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": 1700000000,
            "event": {
                "type": "message",
                "channel": "C2147483705",
                "user": "U2147483697",
                "text": text,
                "ts": "1700000000.000200",
                "thread_ts": "1699999999.000100",
                "channel_type": "channel",
                "files": [
                    {
                        "id": "F0S43P1CZ",
                        "name": "plan.pdf",
                        "mimetype": "application/pdf",
                        "url_private": "https://files.slack.com/plan.pdf",
                        "size": 1024,
                    }
                ],
            },
        }
    ).encode()


async def test_a_signed_event_reaches_the_agent_normalised(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        body = message_event()
        response = await client.post("/webhooks/slack", content=body, headers=signed(body))
        assert response.status_code == 200, response.text
        [request] = agent.seen
        assert request["method"] == "POST" and request["path"] == "/webhooks/slack"
        assert request["headers"]["content-type"] == "application/json"
        assert int(request["headers"]["content-length"]) == len(request["body"])
        event = json.loads(request["body"])
        assert {k: event[k] for k in ("platform", "type", "channel_id", "user_id", "message_id", "text")} == {
            "platform": "slack",
            "type": "message",
            "channel_id": "C2147483705",
            "user_id": "U2147483697",
            "message_id": "1700000000.000200",
            "text": "hello agent",
        }
        assert event["reply_to"] == "1699999999.000100" and event["timestamp"] == 1700000000.0002
        assert event["attachments"] == [
            {
                "type": "file",
                "id": "F0S43P1CZ",
                "name": "plan.pdf",
                "mime_type": "application/pdf",
                "url": "https://files.slack.com/plan.pdf",
                "size": 1024,
            }
        ]
        assert event["raw"] == json.loads(body)


async def test_bad_signature_and_stale_timestamp_are_401_and_never_forwarded(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        body = message_event()
        forged = await client.post("/webhooks/slack", content=body, headers=signed(body, secret="guess"))
        assert forged.status_code == 401 and "signature mismatch" in forged.json()["error"]["message"]
        tampered = await client.post("/webhooks/slack", content=body + b" ", headers=signed(body))
        assert tampered.status_code == 401
        stale = await client.post(
            "/webhooks/slack", content=body, headers=signed(body, timestamp=int(time.time()) - 301)
        )
        assert stale.status_code == 401 and "stale timestamp" in stale.json()["error"]["message"]
        unsigned = await client.post("/webhooks/slack", content=body)
        assert unsigned.status_code == 401
        assert agent.seen == []


async def test_a_retried_event_id_is_answered_but_not_forwarded_again(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        body = message_event("Ev_RETRIED")
        first = await client.post("/webhooks/slack", content=body, headers=signed(body))
        retry_headers = signed(body) | {"x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"}
        retry = await client.post("/webhooks/slack", content=body, headers=retry_headers)
        assert first.status_code == retry.status_code == 200
        assert retry.json() == {"ok": True, "duplicate": True}
        other = message_event("Ev_OTHER")
        assert (await client.post("/webhooks/slack", content=other, headers=signed(other))).status_code == 200
        assert [e["raw"]["event_id"] for e in agent.events()] == ["Ev_RETRIED", "Ev_OTHER"]


async def test_url_verification_is_answered_by_the_gateway(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        body = json.dumps(
            {
                "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
                "type": "url_verification",
                "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
            }
        ).encode()
        response = await client.post("/webhooks/slack", content=body, headers=signed(body))
        assert response.status_code == 200
        assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
        forged = await client.post("/webhooks/slack", content=body, headers=signed(body, secret="x"))
        assert forged.status_code == 401
        assert agent.seen == []
