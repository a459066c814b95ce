"""The channel webhook kinds (stdlib/channels/): their declarations live beside their
implementations, one per platform; importing them here declares them with the middlewares."""

from ...channels.schemas import discord, slack, telegram

__all__ = ["discord", "slack", "telegram"]
