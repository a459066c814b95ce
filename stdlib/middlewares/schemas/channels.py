"""The channel webhook kinds (stdlib/channels/): their declarations live beside their
implementations, one per platform; importing them here declares them with the middlewares."""

from ...channels.schemas import dingtalk, discord, feishu, slack, telegram, webchat, wecom

__all__ = ["dingtalk", "discord", "feishu", "slack", "telegram", "webchat", "wecom"]
