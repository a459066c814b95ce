"""`channel-telegram`: Telegram Bot API webhook updates, verified by their secret token.

```hcl
middlewares "telegram" {
  type         = "channel-telegram"
  secret_token = "${TELEGRAM_SECRET_TOKEN}"   # the secret_token given to setWebhook
}
```

Verification: Telegram sends the `secret_token` of `setWebhook` in the
`X-Telegram-Bot-Api-Secret-Token` header of every update; it must equal the configured one
(compared in constant time), or the request is a 401. The header is removed before forwarding.
Telegram signs nothing else, so there is no timestamp to check and no handshake to answer.

Updates: the message of a `message`, `edited_message`, `channel_post`, `edited_channel_post` or
`business_message` update becomes `type` = that field's name, `channel_id` = `chat.id`,
`user_id` = `from.id` (the chat for channel posts), `message_id`, `text` (or the media's
`caption`), `reply_to` = `reply_to_message.message_id` and `timestamp` = `date`; a photo (its
largest size), document, audio, video, voice, video note or sticker is an attachment with its
`file_id`. A `callback_query` (an inline button) becomes `type = "callback_query"` with its `data`
as `text`. Telegram redelivers an update it got no 2xx for with the same `update_id`: that is
the dedup key.
"""

from __future__ import annotations

import hmac
from typing import Any

from ...runtime.api import Request
from ..registry import register
from ._event import ChannelEvent, Rejected, Verdict, as_id, attachment, number, obj
from ._webhook import ChannelKind, header, json_object
from .schemas.telegram import TelegramChannelConfig

__all__ = ["TelegramChannel", "TelegramChannelConfig", "normalise"]

_MESSAGES = ("message", "edited_message", "channel_post", "edited_channel_post", "business_message")
_MEDIA = ("document", "audio", "video", "voice", "video_note", "sticker", "animation")


def normalise(update: dict[str, Any]) -> ChannelEvent:
    delivery = as_id(update.get("update_id"))
    for kind in _MESSAGES:
        message = update.get(kind)
        if isinstance(message, dict):
            return _message(kind, message, update, delivery)
    query = update.get("callback_query")
    if isinstance(query, dict):
        return _callback(query, update, delivery)
    kind = next((key for key in update if key != "update_id"), "update")
    return ChannelEvent("telegram", kind, None, None, None, "", update, delivery_id=delivery)


def _message(
    kind: str, message: dict[str, Any], update: dict[str, Any], delivery: str | None
) -> ChannelEvent:
    chat = obj(message, "chat")
    sender = obj(message, "from") or obj(message, "sender_chat") or chat
    reply = obj(message, "reply_to_message")
    text = message.get("text", message.get("caption", ""))
    return ChannelEvent(
        platform="telegram",
        type=kind,
        channel_id=as_id(chat.get("id")),
        user_id=as_id(sender.get("id")),
        message_id=as_id(message.get("message_id")),
        text=text if isinstance(text, str) else "",
        raw=update,
        attachments=_attachments(message),
        reply_to=as_id(reply.get("message_id")),
        timestamp=number(message.get("date")),
        delivery_id=delivery,
    )


def _callback(query: dict[str, Any], update: dict[str, Any], delivery: str | None) -> ChannelEvent:
    message = obj(query, "message")
    data = query.get("data")
    return ChannelEvent(
        platform="telegram",
        type="callback_query",
        channel_id=as_id(obj(message, "chat").get("id")),
        user_id=as_id(obj(query, "from").get("id")),
        message_id=as_id(query.get("id")),
        text=data if isinstance(data, str) else "",
        raw=update,
        reply_to=as_id(message.get("message_id")),
        delivery_id=delivery,
    )


def _attachments(message: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    photo = message.get("photo")
    if isinstance(photo, list) and photo and isinstance(photo[-1], dict):  # sizes, smallest first
        found.append(attachment("photo", photo[-1].get("file_id"), size=photo[-1].get("file_size")))
    for kind in _MEDIA:
        media = message.get(kind)
        if isinstance(media, dict):
            found.append(
                attachment(
                    kind,
                    media.get("file_id"),
                    name=media.get("file_name"),
                    mime_type=media.get("mime_type"),
                    size=media.get("file_size"),
                )
            )
    return found


@register("middleware", "channel-telegram")
class TelegramChannel(ChannelKind[TelegramChannelConfig]):
    platform = "telegram"
    secrets = ("secret_token",)
    credentials = (b"x-telegram-bot-api-secret-token",)

    def verify(self, request: Request, body: bytes, now: float) -> Verdict:
        presented = header(request, "x-telegram-bot-api-secret-token")
        if not hmac.compare_digest(presented.encode(), self.config.secret_token.encode()):
            raise Rejected("wrong secret token")
        return normalise(json_object(body))
