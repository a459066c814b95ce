"""The `channel-dingtalk` middleware's configuration (its implementation: channels/dingtalk.py)."""

from __future__ import annotations

from pydantic import Field

from ....compiler.model import SECRET
from ...base import Duration
from ...registry import declare
from ._options import ChannelOptions


class DingTalkChannelConfig(ChannelOptions):
    app_secret: str = Field(description="The robot's AppSecret (the signing key).", json_schema_extra=SECRET)
    max_age: Duration = Field(
        default=3600.0, gt=0, description="Oldest `timestamp` header accepted (1 hour)."
    )


declare("middleware", "channel-dingtalk", config=DingTalkChannelConfig, impl="channels.dingtalk")
