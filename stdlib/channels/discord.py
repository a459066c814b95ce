"""`channel-discord`: Discord interactions (slash commands, components, modals), Ed25519-verified.

```hcl
middlewares "discord" {
  type       = "channel-discord"
  public_key = "${DISCORD_PUBLIC_KEY}"   # the application's PUBLIC KEY, 64 hex digits
  # max_age  = "5m"
}
```

Verification (Discord's "Receiving and Responding"): `X-Signature-Ed25519` must be the hex
Ed25519 signature, by the application's key, of `X-Signature-Timestamp` followed by the raw body;
checked with `cryptography`. Discord states no window for the timestamp; a timestamp more than
`max_age` (5 minutes) from the gateway's clock is refused all the same, so a captured request
cannot be replayed later. Discord sends deliberately bad signatures to check an endpoint: they
get their 401.

Handshake: a verified PING (`type` 1) is answered `{"type": 1}` (PONG) by the gateway.

Interactions: `type` is `command` (2), `component` (3), `autocomplete` (4) or `modal_submit` (5);
`channel_id`, `user_id` (`member.user.id` in a guild, `user.id` in a DM), `message_id` = the
interaction id, `reply_to` = the message a component belongs to, `timestamp` from the id (a
snowflake), `text` = the command line (`/name option=value ...`), the component's `custom_id`
or the modal's values, and the command's resolved attachments. The agent's answer goes back to
Discord as the interaction response. The interaction id is the dedup key.
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ...runtime.api import Request
from ..registry import register
from ._event import ChannelEvent, Rejected, Reply, Verdict, as_id, attachment, obj, seq
from ._webhook import ChannelKind, fresh, header, json_object
from .schemas.discord import DiscordChannelConfig

__all__ = ["DiscordChannel", "DiscordChannelConfig", "check", "normalise"]

_TYPES = {2: "command", 3: "component", 4: "autocomplete", 5: "modal_submit"}
DISCORD_EPOCH_MS = 1_420_070_400_000  # snowflakes count milliseconds from 2015-01-01


def check(
    key: Ed25519PublicKey, timestamp: str, signature: str, body: bytes, now: float, max_age: float
) -> None:
    """Rejected unless `signature` (hex) signs timestamp + body and the timestamp is fresh."""
    fresh(timestamp, now, max_age)
    try:
        key.verify(bytes.fromhex(signature), timestamp.encode() + body)
    except (InvalidSignature, ValueError):
        raise Rejected("signature mismatch") from None


def normalise(interaction: dict[str, Any]) -> Verdict:
    kind = interaction.get("type")
    if kind == 1:
        return Reply.json({"type": 1})
    data = obj(interaction, "data")
    member = obj(interaction, "member")
    user = obj(member, "user") or obj(interaction, "user")
    message = obj(interaction, "message")
    ident = as_id(interaction.get("id"))
    return ChannelEvent(
        platform="discord",
        type=_TYPES.get(kind, "interaction") if isinstance(kind, int) else "interaction",
        channel_id=as_id(interaction.get("channel_id")),
        user_id=as_id(user.get("id")),
        message_id=ident,
        text=_text(kind, data),
        raw=interaction,
        attachments=_attachments(data),
        reply_to=as_id(message.get("id")),
        timestamp=_snowflake_time(ident),
        delivery_id=ident,
    )


def _text(kind: Any, data: dict[str, Any]) -> str:
    if kind in (2, 4):
        words = ["/" + str(data.get("name", ""))]
        words += _options(data.get("options"))
        return " ".join(words)
    if kind == 3:
        return str(data.get("custom_id", ""))
    if kind == 5:
        rows = seq(data, "components")
        values = [
            str(part.get("value", ""))
            for row in rows
            if isinstance(row, dict)
            for part in row.get("components", [])
            if isinstance(part, dict)
        ]
        return "\n".join(values)
    return ""


def _options(options: Any) -> list[str]:
    """`name=value` for each option; a subcommand (group) contributes its name, then its own."""
    words: list[str] = []
    for option in options if isinstance(options, list) else []:
        if not isinstance(option, dict):
            continue
        if "value" in option:
            words.append(f"{option.get('name')}={option['value']}")
        else:
            words.append(str(option.get("name", "")))
            words += _options(option.get("options"))
    return words


def _attachments(data: dict[str, Any]) -> list[dict[str, Any]]:
    resolved = obj(data, "resolved")
    files = obj(resolved, "attachments")
    return [
        attachment(
            "file",
            info.get("id"),
            name=info.get("filename"),
            mime_type=info.get("content_type"),
            url=info.get("url"),
            size=info.get("size"),
        )
        for info in files.values()
        if isinstance(info, dict)
    ]


def _snowflake_time(ident: str | None) -> float | None:
    if ident is None or not ident.isdigit():
        return None
    return ((int(ident) >> 22) + DISCORD_EPOCH_MS) / 1000


@register("middleware", "channel-discord")
class DiscordChannel(ChannelKind[DiscordChannelConfig]):
    platform = "discord"
    secrets = ("public_key",)
    key: Ed25519PublicKey

    def prepare(self) -> None:
        raw = bytes.fromhex(self.config.public_key) if self.config.public_key else bytes(32)  # empty: closed
        self.key = Ed25519PublicKey.from_public_bytes(raw)

    def verify(self, request: Request, body: bytes, now: float) -> Verdict:
        timestamp = header(request, "x-signature-timestamp")
        signature = header(request, "x-signature-ed25519")
        check(self.key, timestamp, signature, body, now, self.config.max_age)
        return normalise(json_object(body))
