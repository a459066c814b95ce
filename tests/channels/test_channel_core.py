"""What every channel kind shares (stdlib/channels/_webhook.py, _dedup.py): the body bound (413),
methods (405), an unreadable verified event (400), forward_path, a channel whose secret is unset
(closed: 401), the dedup table (on a manual clock, and kept across a reload that leaves the node
unchanged), and examples/agent-gateway.hcl run with its environment contract."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.stdlib.channels import slack
from a3s_gateway.stdlib.channels._dedup import SeenDeliveries

from ..stubs import free_port, json_stub
from .agent_gateway import Agent, channel_gateway

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "core-token"
TELEGRAM = f'type = "channel-telegram"\n  secret_token = "{TOKEN}"'
HEADERS = {"x-telegram-bot-api-secret-token": TOKEN}


def test_the_dedup_table_forgets_after_its_window_and_on_release() -> None:
    seen = SeenDeliveries(window=60.0, max_entries=3)
    assert seen.claim("a", now=0.0) and not seen.claim("a", now=59.9)
    assert seen.claim("a", now=60.0)  # the window has passed
    seen.release("a")
    assert seen.claim("a", now=61.0)
    for key in ("b", "c", "d"):
        assert seen.claim(key, now=62.0)
    assert len(seen) == 3 and seen.claim("a", now=62.0)  # the oldest was forgotten first
    off = SeenDeliveries(window=0.0)
    assert off.claim("x", 0.0) and off.claim("x", 0.0) and len(off) == 0


async def test_a_body_over_max_body_bytes_is_413_and_never_forwarded(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, TELEGRAM + '\n  max_body_bytes = "1KiB"') as (client, agent, _):
        big = {"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1}, "text": "x" * 2000}}
        assert (await client.post("/webhooks/telegram", json=big, headers=HEADERS)).status_code == 413

        async def chunks():  # no Content-Length: the bound applies while reading
            for _ in range(4):
                yield b"x" * 400

        chunked = await client.post("/webhooks/telegram", content=chunks(), headers=HEADERS)
        assert chunked.status_code == 413
        assert agent.seen == []


async def test_other_methods_are_405_and_an_unreadable_event_is_400(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, TELEGRAM) as (client, agent, _):
        get = await client.get("/webhooks/telegram", headers=HEADERS)
        assert get.status_code == 405 and get.headers["allow"] == "POST"
        garbage = await client.post("/webhooks/telegram", content=b"{not json", headers=HEADERS)
        assert (
            garbage.status_code == 400 and "unreadable telegram event" in garbage.json()["error"]["message"]
        )
        array = await client.post("/webhooks/telegram", content=b"[1]", headers=HEADERS)
        assert array.status_code == 400
        assert agent.seen == []


async def test_a_chunked_request_is_forwarded_with_a_content_length_to_forward_path(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, TELEGRAM + '\n  forward_path = "/events"') as (client, agent, _):
        data = json.dumps({"update_id": 3, "message": {"message_id": 1, "chat": {"id": 1}, "text": "hi"}})

        async def chunks():
            yield data[:10].encode()
            yield data[10:].encode()

        response = await client.post("/webhooks/telegram?x=1", content=chunks(), headers=HEADERS)
        assert response.status_code == 200, response.text
        [request] = agent.seen
        assert request["path"] == "/events" and "transfer-encoding" not in request["headers"]
        assert int(request["headers"]["content-length"]) == len(request["body"])
        assert json.loads(request["body"])["text"] == "hi"


async def test_an_unset_secret_closes_the_channel(tmp_path: Path) -> None:
    middleware = 'type = "channel-slack"\n  signing_secret = "${SLACK_SIGNING_SECRET:-}"'
    async with channel_gateway(tmp_path, middleware, env={}) as (client, agent, _):
        body = b'{"type":"url_verification","challenge":"c"}'
        headers = {"x-slack-request-timestamp": str(int(time.time()))}
        headers["x-slack-signature"] = slack.signature("", headers["x-slack-request-timestamp"], body)
        response = await client.post("/webhooks/slack", content=body, headers=headers)
        assert (
            response.status_code == 401
            and "no signing_secret configured" in response.json()["error"]["message"]
        )
        assert agent.seen == []


async def test_the_dedup_table_survives_a_reload_that_keeps_the_node(tmp_path: Path) -> None:
    async with channel_gateway(tmp_path, TELEGRAM) as (client, agent, gateway):
        update = {"update_id": 77, "message": {"message_id": 1, "chat": {"id": 1}, "text": "once"}}
        assert (await client.post("/webhooks/telegram", json=update, headers=HEADERS)).status_code == 200
        path = tmp_path / "gateway.hcl"
        path.write_text(
            path.read_text() + '\nrouters "other" {\n  rule = "Path(`/other`)"\n  service = "agent"\n}\n'
        )
        plan = await gateway.reload()
        assert "middleware:channel" in plan.unchanged
        again = await client.post("/webhooks/telegram", json=update, headers=HEADERS)
        assert again.json() == {"ok": True, "duplicate": True}
        # A changed channel (here its token) is a new node: a new table.
        path.write_text(path.read_text().replace(TOKEN, TOKEN + "2"))
        plan = await gateway.reload()
        assert "middleware:channel" in plan.changed
        headers = {"x-telegram-bot-api-secret-token": TOKEN + "2"}
        assert (await client.post("/webhooks/telegram", json=update, headers=headers)).json() == {"ok": True}
        assert len(agent.seen) == 2


async def test_the_agent_gateway_example_with_its_environment(tmp_path: Path) -> None:
    """examples/agent-gateway.hcl: A3S_PORT, SLACK_SIGNING_SECRET, TELEGRAM_SECRET_TOKEN and
    AGENT_URL from the environment; Slack at /webhooks/slack, Telegram at /webhooks/telegram,
    each event POSTed as JSON to the agent."""
    agent = Agent()
    with json_stub(agent.route) as agent_url:
        port = free_port()
        env = {
            "A3S_PORT": str(port),
            "SLACK_SIGNING_SECRET": "slack-from-env",
            "TELEGRAM_SECRET_TOKEN": "telegram-from-env",
            "AGENT_URL": agent_url,
        }
        async with (
            Gateway(str(ROOT / "examples" / "agent-gateway.hcl"), env=env),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
        ):
            body = json.dumps(
                {
                    "type": "event_callback",
                    "event_id": "Ev1",
                    "event": {
                        "type": "app_mention",
                        "channel": "C1",
                        "user": "U1",
                        "text": "hi",
                        "ts": "1.5",
                    },
                }
            ).encode()
            ts = str(int(time.time()))
            headers = {
                "x-slack-request-timestamp": ts,
                "x-slack-signature": slack.signature("slack-from-env", ts, body),
            }
            assert (await client.post("/webhooks/slack", content=body, headers=headers)).status_code == 200
            update = {
                "update_id": 5,
                "message": {"message_id": 9, "chat": {"id": 2}, "from": {"id": 3}, "text": "yo"},
            }
            tg = {"x-telegram-bot-api-secret-token": "telegram-from-env"}
            assert (await client.post("/webhooks/telegram", json=update, headers=tg)).status_code == 200
            wrong = {"x-telegram-bot-api-secret-token": "nope"}
            assert (await client.post("/webhooks/telegram", json=update, headers=wrong)).status_code == 401
            assert [(r["method"], r["path"], r["headers"]["content-type"]) for r in agent.seen] == [
                ("POST", "/webhooks/slack", "application/json"),
                ("POST", "/webhooks/telegram", "application/json"),
            ]
            events = agent.events()
            assert [(e["platform"], e["channel_id"], e["user_id"], e["text"]) for e in events] == [
                ("slack", "C1", "U1", "hi"),
                ("telegram", "2", "3", "yo"),
            ]
