"""The `channel-wecom` middleware's configuration (its implementation: channels/wecom.py)."""

from __future__ import annotations

import base64
import binascii

from pydantic import Field, field_validator

from ....compiler.model import SECRET
from ...base import Duration
from ...registry import declare
from ._options import ChannelOptions


class WeComChannelConfig(ChannelOptions):
    token: str = Field(description="The callback's Token.", json_schema_extra=SECRET)
    encoding_aes_key: str = Field(
        description="The callback's EncodingAESKey (43 characters).", json_schema_extra=SECRET
    )
    corp_id: str | None = Field(
        default=None,
        description="The receiver id a decrypted message must name (the CorpID).",
    )
    max_age: Duration = Field(default=300.0, gt=0, description="Oldest `timestamp` query parameter accepted.")

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_key(cls, value: str) -> str:
        if value == "":
            return value  # unset: the channel refuses every request
        try:
            key = base64.b64decode(value + "=", validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(value) != 43 or len(key) != 32:
            raise ValueError("an EncodingAESKey is 43 base64 characters (a 32-byte AES key)")
        return value

    def aes_key(self) -> bytes:
        """The AES key (empty while the EncodingAESKey is unset)."""
        return base64.b64decode(self.encoding_aes_key + "=") if self.encoding_aes_key else b""


declare("middleware", "channel-wecom", config=WeComChannelConfig, impl="channels.wecom")
