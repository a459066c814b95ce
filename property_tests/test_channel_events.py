"""Channel normalisation is total: whatever JSON a platform (or an attacker holding its secret)
sends, each platform's `normalise` returns an event (or a handshake reply) that serialises, or
raises ValueError, which the channel answers 400. Never another exception: that would be a 500.
The payloads are arbitrary JSON, and arbitrary JSON under the keys each platform reads, so the
type checks on every nested field are exercised."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from a3s_gateway.stdlib.channels import dingtalk, discord, feishu, slack, telegram, webchat, wecom
from a3s_gateway.stdlib.channels._event import ChannelEvent

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
KEYS = [
    "type", "event", "event_id", "channel", "user", "text", "ts", "thread_ts", "files", "item", "command",
    "trigger_id", "actions", "message", "update_id", "chat", "from", "photo", "document", "callback_query",
    "reply_to_message", "caption", "data", "member", "id", "options", "resolved", "attachments", "components",
    "name", "value", "custom_id", "header", "schema", "content", "message_type", "sender", "sender_id",
    "msgtype", "msgId", "richText", "repliedMsg", "conversationId", "MsgType", "MsgId", "Event", "msgid",
    "message_id", "conversation_id", "timestamp", "createAt", "create_time", "date", "challenge",
]  # fmt: skip
shaped = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
    max_leaves=20,
)
payloads = st.dictionaries(st.sampled_from(KEYS), shaped, max_size=6) | st.dictionaries(
    st.text(), json_values
)

NORMALISERS: list[Any] = [
    slack.normalise,
    telegram.normalise,
    discord.normalise,
    feishu.normalise,
    dingtalk.normalise,
    wecom.normalise,
    lambda payload: webchat.normalise(payload, "user", 0.0),
]


@settings(max_examples=400, deadline=None)
@given(payloads)
def test_every_normaliser_is_total(payload: dict[str, Any]) -> None:
    for normalise in NORMALISERS:
        try:
            verdict = normalise(payload)
        except ValueError:
            continue
        if isinstance(verdict, ChannelEvent):
            json.loads(verdict.to_json())
            assert all(isinstance(a, dict) for a in verdict.attachments)
