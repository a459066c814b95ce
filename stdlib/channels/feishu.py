"""`channel-feishu` (alias `channel-lark`): Feishu/Lark event subscriptions, verified and decrypted.

```hcl
middlewares "feishu" {
  type               = "channel-feishu"
  verification_token = "${FEISHU_VERIFICATION_TOKEN}"
  encrypt_key        = "${FEISHU_ENCRYPT_KEY}"        # when "Encrypt Key" is set in the console
  # max_age          = "1h"
}
```

Verification (Feishu's "Event subscription" and "Encrypt Key" pages):
- the `token` of the event (`header.token` in schema 2.0, `token` in 1.0) must equal
  `verification_token` when it is set;
- with `encrypt_key`, every event comes as `{"encrypt": "<base64>"}`: its first 16 bytes are the
  IV, the rest AES-256-CBC with the key SHA-256(`encrypt_key`) and PKCS#7 padding. An event
  must then also carry `X-Lark-Signature`, the hex SHA-256 of `X-Lark-Request-Timestamp`,
  `X-Lark-Request-Nonce`, the encrypt key and the raw body, concatenated; a timestamp (seconds)
  more than `max_age` from the gateway's clock is refused. Feishu states no window; one hour is
  this kind's default, raise it if your endpoint should take Feishu's late retries. A plain
  event reaching a channel with an `encrypt_key` is refused.
Any failure is a 401.

Handshake: the `url_verification` request (encrypted too, with an encrypt key, but not signed)
is answered `{"challenge": ...}` once its token checks out.

Events: schema 2.0's `im.message.receive_v1` becomes `type` = `header.event_type`, `channel_id`
= `message.chat_id`, `user_id` = the sender's `open_id`, `message_id`, `reply_to` =
`parent_id`, `timestamp` = `create_time` (milliseconds), `text` from the message's JSON
`content` (a text, or the text of a rich `post`), and images and files as attachments (their
keys). Other events keep their type and what ids they have. `header.event_id` (1.0: `uuid`) is
the dedup key, as Feishu says to deduplicate.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from ...runtime.api import Request
from ..registry import register
from ._cipher import b64decode, decrypt
from ._event import ChannelEvent, Rejected, Reply, Verdict, as_id, attachment, number, obj
from ._webhook import ChannelKind, fresh, header, json_object
from .schemas.feishu import FeishuChannelConfig

__all__ = ["FeishuChannel", "FeishuChannelConfig", "decrypt_event", "normalise", "signature"]


def decrypt_event(key: bytes, encrypted: str) -> bytes:
    """The plaintext of an `encrypt` field, with `key` = SHA-256 of the encrypt key."""
    data = b64decode(encrypted)
    return decrypt(key, data[:16], data[16:])


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()


def normalise(payload: dict[str, Any]) -> ChannelEvent:
    head = payload.get("header")
    if isinstance(head, dict):
        return _v2(head, obj(payload, "event"), payload)
    event = obj(payload, "event")
    text = event.get("text_without_at_bot", event.get("text", ""))
    return ChannelEvent(
        platform="feishu",
        type=str(event.get("type") or payload.get("type") or "event"),
        channel_id=as_id(event.get("open_chat_id")),
        user_id=as_id(event.get("open_id")),
        message_id=as_id(event.get("open_message_id")),
        text=text if isinstance(text, str) else "",
        raw=payload,
        timestamp=number(payload.get("ts")),
        delivery_id=as_id(payload.get("uuid")),
    )


def _v2(head: dict[str, Any], event: dict[str, Any], payload: dict[str, Any]) -> ChannelEvent:
    message = obj(event, "message")
    sender = obj(obj(event, "sender"), "sender_id")
    text, attachments = _content(str(message.get("message_type", "")), message.get("content"))
    created = message.get("create_time", head.get("create_time"))
    return ChannelEvent(
        platform="feishu",
        type=str(head.get("event_type") or "event"),
        channel_id=as_id(message.get("chat_id")),
        user_id=as_id(sender.get("open_id")) or as_id(obj(event, "operator_id").get("open_id")),
        message_id=as_id(message.get("message_id")),
        text=text,
        raw=payload,
        attachments=attachments,
        reply_to=as_id(message.get("parent_id")),
        timestamp=number(created, 1000.0),
        delivery_id=as_id(head.get("event_id")),
    )


def _content(kind: str, content: Any) -> tuple[str, list[dict[str, Any]]]:
    """The text and attachments of a message's `content` (a JSON string)."""
    try:
        body = json.loads(content) if isinstance(content, str) else {}
    except ValueError:
        return "", []
    if not isinstance(body, dict):
        return "", []
    if kind == "text":
        return str(body.get("text", "")), []
    if kind == "post":
        return _post(body)
    if kind == "image":
        return "", [attachment("image", body.get("image_key"))]
    if kind in ("file", "audio", "media"):
        return "", [attachment(kind, body.get("file_key"), name=body.get("file_name"))]
    return "", []


def _post(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """A rich post: `{"title", "content": [[elements]]}`, possibly under a locale key."""
    if "content" not in body:
        body = next((v for v in body.values() if isinstance(v, dict)), {})
    lines, images = [str(body.get("title") or "")], []
    for line in body.get("content") or []:
        words = []
        for element in line if isinstance(line, list) else []:
            if not isinstance(element, dict):
                continue
            if element.get("tag") == "img":
                images.append(attachment("image", element.get("image_key")))
            elif "text" in element:
                words.append(str(element["text"]))
        lines.append("".join(words))
    return "\n".join(line for line in lines if line), images


@register("middleware", "channel-feishu")
class FeishuChannel(ChannelKind[FeishuChannelConfig]):
    platform = "feishu"
    key: bytes | None  # SHA-256 of the encrypt key

    @classmethod
    def unset_secret(cls, config: FeishuChannelConfig) -> str | None:
        return (
            None if config.verification_token or config.encrypt_key else "verification_token or encrypt_key"
        )

    def prepare(self) -> None:
        encrypt_key = self.config.encrypt_key
        self.key = hashlib.sha256(encrypt_key.encode()).digest() if encrypt_key else None

    def verify(self, request: Request, body: bytes, now: float) -> Verdict:
        cfg = self.config
        signed = bool(cfg.encrypt_key) and "x-lark-signature" in request.headers
        if signed:
            self._check_signature(request, body, now)
        payload = self._open(json_object(body))
        if payload.get("type") == "url_verification":
            self._check_token(payload.get("token"))
            return Reply.json({"challenge": payload.get("challenge", "")})
        if cfg.encrypt_key and not signed:
            raise Rejected("missing x-lark-signature")
        head = payload.get("header")
        self._check_token(head.get("token") if isinstance(head, dict) else payload.get("token"))
        return normalise(payload)

    def _check_signature(self, request: Request, body: bytes, now: float) -> None:
        assert self.config.encrypt_key is not None
        timestamp = header(request, "x-lark-request-timestamp")
        nonce = header(request, "x-lark-request-nonce")
        fresh(timestamp, now, self.config.max_age)
        expected = signature(timestamp, nonce, self.config.encrypt_key, body)
        if not hmac.compare_digest(expected.encode(), header(request, "x-lark-signature").encode()):
            raise Rejected("signature mismatch")

    def _open(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The event itself: decrypted when it came encrypted (and must, with an encrypt key)."""
        encrypted = payload.get("encrypt")
        if self.key is None:
            if encrypted is not None:
                raise Rejected("an encrypted event, but no encrypt_key is configured")
            return payload
        if not isinstance(encrypted, str):
            raise Rejected("the event is not encrypted although encrypt_key is set")
        try:
            return json_object(decrypt_event(self.key, encrypted))
        except ValueError:
            raise Rejected("cannot decrypt the payload") from None

    def _check_token(self, token: Any) -> None:
        expected = self.config.verification_token
        if not expected:
            return
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), expected.encode()):
            raise Rejected("wrong verification token")
