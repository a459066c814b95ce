"""channel-telegram: the X-Telegram-Bot-Api-Secret-Token check, update normalisation (text,
media, replies, callback queries) and update_id deduplication, through a real gateway.

Telegram signs nothing with a timestamp and has no handshake: there is no stale-timestamp or
challenge case for it (its docs: setWebhook's secret_token is the whole of its verification).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from a3s_gateway.stdlib.channels import telegram

from .agent_gateway import channel_gateway

pytestmark = pytest.mark.anyio

TOKEN = "tg-Secret_token-123"
MIDDLEWARE = f'type = "channel-telegram"\n  secret_token = "{TOKEN}"'


def update(update_id: int = 10000, **message: object) -> dict[str, object]:
    """An Update as the Bot API documents it (a text message in a group, replying to another)."""
    base = {
        "message_id": 1365,
        "date": 1441645532,
        "text": "/start hello",
        "from": {"id": 1111111, "is_bot": False, "first_name": "Test", "username": "Test"},
        "chat": {"id": -1001234567890, "type": "supergroup", "title": "Agents"},
        "reply_to_message": {"message_id": 1360, "date": 1441645500, "chat": {"id": -1001234567890}},
    }
    return {"update_id": update_id, "message": base | message}


async def test_a_valid_update_reaches_the_agent_without_the_secret(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        headers = {"x-telegram-bot-api-secret-token": TOKEN}
        response = await client.post("/webhooks/telegram", json=update(), headers=headers)
        assert response.status_code == 200, response.text
        [request] = agent.seen
        assert "x-telegram-bot-api-secret-token" not in request["headers"]
        event = json.loads(request["body"])
        assert {k: v for k, v in event.items() if k != "raw"} == {
            "platform": "telegram",
            "type": "message",
            "channel_id": "-1001234567890",
            "user_id": "1111111",
            "message_id": "1365",
            "text": "/start hello",
            "attachments": [],
            "reply_to": "1360",
            "timestamp": 1441645532,
        }
        assert event["raw"] == update()


async def test_a_wrong_or_missing_secret_token_is_401(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        wrong = await client.post(
            "/webhooks/telegram", json=update(), headers={"x-telegram-bot-api-secret-token": TOKEN + "x"}
        )
        missing = await client.post("/webhooks/telegram", json=update())
        assert wrong.status_code == missing.status_code == 401
        assert agent.seen == []


async def test_a_redelivered_update_id_is_not_forwarded_twice(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        headers = {"x-telegram-bot-api-secret-token": TOKEN}
        for update_id in (7, 7, 8, 7):
            response = await client.post("/webhooks/telegram", json=update(update_id), headers=headers)
            assert response.status_code == 200
        assert [e["raw"]["update_id"] for e in agent.events()] == [7, 8]


async def test_the_agent_failing_lets_the_redelivery_through(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, MIDDLEWARE) as (client, agent, _):
        headers = {"x-telegram-bot-api-secret-token": TOKEN}
        agent.status = 503
        assert (await client.post("/webhooks/telegram", json=update(9), headers=headers)).status_code == 503
        agent.status = 200
        assert (await client.post("/webhooks/telegram", json=update(9), headers=headers)).status_code == 200
        assert (await client.post("/webhooks/telegram", json=update(9), headers=headers)).json()["duplicate"]
        assert len(agent.seen) == 2


def test_media_and_callback_queries_normalise() -> None:
    photo = update(
        1,
        text=None,
        caption="look",
        photo=[{"file_id": "small", "file_size": 10}, {"file_id": "big", "file_size": 99}],
        document={"file_id": "doc1", "file_name": "a.pdf", "mime_type": "application/pdf", "file_size": 5},
    )
    del photo["message"]["text"]  # type: ignore[attr-defined]
    event = telegram.normalise(photo)
    assert event.text == "look"
    assert event.attachments == [
        {"type": "photo", "id": "big", "size": 99},
        {"type": "document", "id": "doc1", "name": "a.pdf", "mime_type": "application/pdf", "size": 5},
    ]
    query = {
        "update_id": 2,
        "callback_query": {
            "id": "4382bfdwdsb323b2d9",
            "from": {"id": 42},
            "data": "approve",
            "message": {"message_id": 77, "chat": {"id": 5}},
        },
    }
    event = telegram.normalise(query)
    assert (event.type, event.text, event.channel_id, event.user_id, event.reply_to, event.delivery_id) == (
        "callback_query",
        "approve",
        "5",
        "42",
        "77",
        "2",
    )
