"""The `channel-discord` middleware's configuration (its implementation: channels/discord.py)."""

from __future__ import annotations

from pydantic import Field, field_validator

from ...base import Duration
from ...registry import declare
from ._options import ChannelOptions


class DiscordChannelConfig(ChannelOptions):
    public_key: str = Field(description="The application's public key (64 hex digits, Developer Portal).")
    max_age: Duration = Field(default=300.0, gt=0, description="Oldest X-Signature-Timestamp accepted.")

    @field_validator("public_key")
    @classmethod
    def _key(cls, value: str) -> str:
        if value == "":
            return value  # unset: the channel refuses every request
        try:
            raw = bytes.fromhex(value.strip())
        except ValueError:
            raise ValueError("public_key must be hex (the Developer Portal's PUBLIC KEY)") from None
        if len(raw) != 32:
            raise ValueError(f"an Ed25519 public key is 32 bytes (64 hex digits), got {len(raw)}")
        return value.strip().lower()


declare("middleware", "channel-discord", config=DiscordChannelConfig, impl="channels.discord")
