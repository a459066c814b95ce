"""The `channel-slack` middleware's configuration (its implementation: channels/slack.py)."""

from __future__ import annotations

from pydantic import Field

from ....compiler.model import SECRET
from ...base import Duration
from ...registry import declare
from ._options import ChannelOptions


class SlackChannelConfig(ChannelOptions):
    signing_secret: str = Field(
        description="The app's Signing Secret (Basic Information).", json_schema_extra=SECRET
    )
    max_age: Duration = Field(
        default=300.0, gt=0, description="Oldest X-Slack-Request-Timestamp accepted (Slack: 5 minutes)."
    )


declare("middleware", "channel-slack", config=SlackChannelConfig, impl="channels.slack")
