"""The `channel-telegram` middleware's configuration (its implementation: channels/telegram.py)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from ....compiler.model import SECRET
from ...registry import declare
from ._options import ChannelOptions

# setWebhook's secret_token: 1-256 characters, A-Z, a-z, 0-9, _ and - (Bot API).
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


class TelegramChannelConfig(ChannelOptions):
    secret_token: str = Field(description="The secret_token given to setWebhook.", json_schema_extra=SECRET)

    @field_validator("secret_token")
    @classmethod
    def _token(cls, value: str) -> str:
        if value and not _TOKEN.fullmatch(value):
            raise ValueError("a Telegram secret_token is 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value


declare("middleware", "channel-telegram", config=TelegramChannelConfig, impl="channels.telegram")
