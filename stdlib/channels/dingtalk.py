"""`channel-dingtalk`: DingTalk robot messages (the robot's HTTP callback), verified by signature.

```hcl
middlewares "dingtalk" {
  type       = "channel-dingtalk"
  app_secret = "${DINGTALK_APP_SECRET}"
  # max_age  = "1h"
}
```

Verification (DingTalk's robot "receive messages" page): the `sign` header must be the base64
HMAC-SHA256, keyed with the AppSecret, of `<timestamp>\\n<AppSecret>`, where `timestamp` (another
header) is in milliseconds and no more than `max_age` (one hour, as DingTalk says) from the
gateway's clock. DingTalk has no handshake.

Messages: `type` = `msgtype` (`text`, `picture`, `richText`, `file` ...), `channel_id` =
`conversationId`, `user_id` = `senderStaffId` (or `senderId`), `message_id` = `msgId`,
`text` = `text.content` (trimmed: group messages start with a space after the @mention), the
text parts of a `richText`, `timestamp` = `createAt`, pictures and files as attachments (their
`downloadCode`), and `reply_to` the quoted message when there is one. The `sessionWebhook` to
answer through stays in `raw`. `msgId` is the dedup key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from ...runtime.api import Request
from ..registry import register
from ._event import ChannelEvent, Rejected, Verdict, as_id, attachment, number, obj, seq
from ._webhook import ChannelKind, fresh, header, json_object
from .schemas.dingtalk import DingTalkChannelConfig

__all__ = ["DingTalkChannel", "DingTalkChannelConfig", "check", "normalise", "signature"]


def signature(secret: str, timestamp: str) -> str:
    """DingTalk's `sign`: base64 HMAC-SHA256 of "timestamp\\nsecret", keyed with the secret."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def check(secret: str, timestamp: str, sign: str, now: float, max_age: float) -> None:
    fresh(timestamp, now, max_age, scale=1000.0)
    if not hmac.compare_digest(signature(secret, timestamp).encode(), sign.encode()):
        raise Rejected("signature mismatch")


def normalise(message: dict[str, Any]) -> ChannelEvent:
    kind = str(message.get("msgtype") or "message")
    content = obj(message, "content")
    text_part = obj(message, "text")
    replied = obj(text_part, "repliedMsg")
    return ChannelEvent(
        platform="dingtalk",
        type=kind,
        channel_id=as_id(message.get("conversationId")),
        user_id=as_id(message.get("senderStaffId")) or as_id(message.get("senderId")),
        message_id=as_id(message.get("msgId")),
        text=_text(kind, text_part, content),
        raw=message,
        attachments=_attachments(kind, content),
        reply_to=as_id(replied.get("msgId")) or as_id(message.get("originalMsgId")),
        timestamp=number(message.get("createAt"), 1000.0),
        delivery_id=as_id(message.get("msgId")),
    )


def _text(kind: str, text: dict[str, Any], content: dict[str, Any]) -> str:
    if kind == "text":
        return str(text.get("content", "")).strip()
    if kind == "richText":
        parts = seq(content, "richText")
        return "".join(str(p["text"]) for p in parts if isinstance(p, dict) and "text" in p).strip()
    return str(content.get("recognition", "")) if kind == "audio" else ""


def _attachments(kind: str, content: dict[str, Any]) -> list[dict[str, Any]]:
    if kind == "richText":
        parts = seq(content, "richText")
        return [
            attachment("picture", p.get("downloadCode"))
            for p in parts
            if isinstance(p, dict) and p.get("type") == "picture"
        ]
    if kind in ("picture", "file", "audio", "video") and "downloadCode" in content:
        return [attachment(kind, content.get("downloadCode"), name=content.get("fileName"))]
    return []


@register("middleware", "channel-dingtalk")
class DingTalkChannel(ChannelKind[DingTalkChannelConfig]):
    platform = "dingtalk"
    secrets = ("app_secret",)

    def verify(self, request: Request, body: bytes, now: float) -> Verdict:
        cfg = self.config
        check(cfg.app_secret, header(request, "timestamp"), header(request, "sign"), now, cfg.max_age)
        return normalise(json_object(body))
