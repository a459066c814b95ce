"""The `channel-feishu` middleware's configuration (its implementation: channels/feishu.py)."""

from __future__ import annotations

from pydantic import Field, model_validator

from ....compiler.model import SECRET
from ...base import Duration
from ...registry import declare
from ._options import ChannelOptions


class FeishuChannelConfig(ChannelOptions):
    verification_token: str | None = Field(
        default=None, description="The app's Verification Token.", json_schema_extra=SECRET
    )
    encrypt_key: str | None = Field(
        default=None,
        description="The app's Encrypt Key (encrypted, signed events).",
        json_schema_extra=SECRET,
    )
    max_age: Duration = Field(
        default=3600.0, gt=0, description="Oldest X-Lark-Request-Timestamp accepted (with encrypt_key)."
    )

    @model_validator(mode="after")
    def _something_to_check(self) -> FeishuChannelConfig:
        if self.verification_token is None and self.encrypt_key is None:
            raise ValueError("channel-feishu needs verification_token, encrypt_key or both")
        return self


declare(
    "middleware",
    "channel-feishu",
    config=FeishuChannelConfig,
    impl="channels.feishu",
    aliases=("channel-lark",),
)
