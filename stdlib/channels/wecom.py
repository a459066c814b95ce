"""`channel-wecom`: WeCom (企业微信) callbacks, verified by msg_signature and decrypted.

```hcl
middlewares "wecom" {
  type             = "channel-wecom"
  token            = "${WECOM_TOKEN}"
  encoding_aes_key = "${WECOM_ENCODING_AES_KEY}"
  corp_id          = "ww1436e0e65a779aee"   # optional: the receiver id decrypted messages must name
  # max_age        = "5m"
}
```

Verification (WeCom's "加解密方案"): `msg_signature` (a query parameter) must be the hex SHA-1 of
the token, `timestamp`, `nonce` and the encrypted payload, sorted and concatenated; a `timestamp`
more than `max_age` from the gateway's clock is refused (WeCom states no window). The payload
is AES-256-CBC with the key base64(EncodingAESKey + "=") and the key's first 16 bytes as IV,
padded (PKCS#7) to 32-byte multiples; the plaintext is 16 random bytes, the message length
(4 bytes, big-endian), the message and the receiver id, which must be `corp_id` when it is set.
Any failure is a 401.

Handshake: the URL verification GET (`?msg_signature&timestamp&nonce&echostr`) is answered
with the decrypted `echostr`, as WeCom expects, once its signature checks out.

Messages: a POSTed `<xml><Encrypt>...</Encrypt></xml>` (or an AI bot's `{"encrypt": ...}`) is
decrypted; its XML (or JSON) message becomes `type` = `MsgType` (the `Event` for events),
`channel_id` = `ChatId` or `AgentID`, `user_id` = `FromUserName`, `message_id` = `MsgId`,
`text` = `Content`, `timestamp` = `CreateTime`, and images, voice, video and files as
attachments (their `MediaId`). `raw` is the decrypted message as an object. The dedup key is
`MsgId` (for events, which have none, `FromUserName` + `CreateTime` + `Event`, as WeCom says).
XML is parsed with defusedxml.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from typing import Any
from urllib.parse import parse_qs
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from ...runtime.api import Request
from ..registry import register
from ._cipher import b64decode, decrypt
from ._event import ChannelEvent, Rejected, Reply, Verdict, as_id, attachment, number, obj
from ._webhook import ChannelKind, fresh
from .schemas.wecom import WeComChannelConfig

__all__ = ["WeComChannel", "WeComChannelConfig", "normalise", "open_message", "signature"]

_MEDIA = {"image": "PicUrl", "voice": "Format", "video": "ThumbMediaId", "file": "FileName"}


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    return hashlib.sha1("".join(sorted((token, timestamp, nonce, encrypted))).encode()).hexdigest()


def open_message(key: bytes, encrypted: str, corp_id: str | None) -> str:
    """The message inside `encrypted`; Rejected when it cannot be decrypted or names another receiver."""
    plain = decrypt(key, key[:16], b64decode(encrypted), block=32)
    if len(plain) < 20:
        raise Rejected("cannot decrypt the payload")
    (length,) = struct.unpack(">I", plain[16:20])
    message, receiver = plain[20 : 20 + length], plain[20 + length :]
    if len(message) != length:
        raise Rejected("cannot decrypt the payload")
    if corp_id is not None and not hmac.compare_digest(receiver, corp_id.encode()):
        raise Rejected("the message is for another receiver id")
    try:
        return message.decode()
    except UnicodeDecodeError:
        raise Rejected("cannot decrypt the payload") from None


def xml_fields(text: str | bytes) -> dict[str, str]:
    """The child elements of an XML document's root, as tag -> text (WeCom's messages are flat)."""
    try:
        root = fromstring(text)
    except (ParseError, DefusedXmlException) as exc:
        raise ValueError(f"malformed XML ({exc})") from None
    return {child.tag: (child.text or "") for child in root}


def normalise(message: dict[str, Any]) -> ChannelEvent:
    if "MsgType" not in message:
        return _bot(message)
    kind = message.get("MsgType", "")
    if kind == "event":
        kind = message.get("Event") or "event"
    sender, created = as_id(message.get("FromUserName")), message.get("CreateTime")
    msg_id = as_id(message.get("MsgId"))
    media = message.get("MediaId")
    return ChannelEvent(
        platform="wecom",
        type=kind,
        channel_id=as_id(message.get("ChatId")) or as_id(message.get("AgentID")),
        user_id=sender,
        message_id=msg_id,
        text=str(message.get("Content", "")),
        raw=message,
        attachments=[attachment(kind, media, url=message.get("PicUrl"), name=message.get("FileName"))]
        if media
        else [],
        timestamp=number(created),
        delivery_id=msg_id or f"{sender}:{created}:{message.get('Event', '')}",
    )


def _bot(message: dict[str, Any]) -> ChannelEvent:
    """An AI bot (智能机器人) callback: JSON, `msgid`, `chatid`, `from.userid`, `text.content`."""
    sender = obj(message, "from")
    kind = str(message.get("msgtype") or "event")
    part = obj(message, kind)
    msg_id = as_id(message.get("msgid"))
    return ChannelEvent(
        platform="wecom",
        type=kind,
        channel_id=as_id(message.get("chatid")),
        user_id=as_id(sender.get("userid")),
        message_id=msg_id,
        text=str(part.get("content", "")),
        raw=message,
        attachments=[attachment(kind, part.get("url"), url=part.get("url"))]
        if kind in ("image", "file")
        else [],
        delivery_id=msg_id,
    )


@register("middleware", "channel-wecom")
class WeComChannel(ChannelKind[WeComChannelConfig]):
    platform = "wecom"
    secrets = ("token", "encoding_aes_key")
    methods = frozenset({"GET", "POST"})
    key: bytes

    def prepare(self) -> None:
        self.key = self.config.aes_key()

    def verify(self, request: Request, body: bytes, now: float) -> Verdict:
        query = {name: values[0] for name, values in parse_qs(request.query).items()}
        if request.method == "GET":
            echo = self._checked(query, query.get("echostr"), now)
            return Reply(200, echo.encode(), "text/plain; charset=utf-8")
        outer = json.loads(body) if body.lstrip().startswith(b"{") else xml_fields(body)
        encrypted = outer.get("Encrypt", outer.get("encrypt")) if isinstance(outer, dict) else None
        text = self._checked(query, encrypted, now)
        inner = json.loads(text) if text.lstrip().startswith("{") else xml_fields(text)
        if not isinstance(inner, dict):
            raise ValueError("the message is not an object")
        return normalise(inner)

    def _checked(self, query: dict[str, str], encrypted: Any, now: float) -> str:
        """The plaintext of `encrypted` once the query's signature and timestamp check out."""
        if not isinstance(encrypted, str) or not encrypted:
            raise Rejected("missing the encrypted payload")
        missing = [name for name in ("msg_signature", "timestamp", "nonce") if not query.get(name)]
        if missing:
            raise Rejected(f"missing {', '.join(missing)}")
        fresh(query["timestamp"], now, self.config.max_age)
        expected = signature(self.config.token, query["timestamp"], query["nonce"], encrypted)
        if not hmac.compare_digest(expected.encode(), query["msg_signature"].encode()):
            raise Rejected("signature mismatch")
        return open_message(self.key, encrypted, self.config.corp_id)
