"""The `websocket_mux` service kind's configuration (its implementation: services/websocket_mux.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ...base import ConfigModel, Size
from ...registry import declare

__all__ = ["ChannelRoute", "WebSocketMuxConfig"]

Problem = tuple[tuple[str | int, ...], str]


class ChannelRoute(ConfigModel):
    """A `channel "<name or glob>" { ... }` block: where the channels of that name go, and who may open them."""

    service: str = Field(description="The service the channel's messages go to.")
    mode: Literal["websocket", "http"] = Field(
        default="websocket",
        description="websocket: one backend WebSocket per channel, messages relayed both ways; "
        "http: each data message is POSTed and the response body comes back as one message.",
    )
    path: str = Field(default="/", description="The target on the service: the upgrade's, or the POST's.")
    allow_users: list[str] = Field(
        default=[],
        description="Who may open it: the basic-auth user or the JWT `sub` of the upgrade request ([]: anyone).",
    )
    allow_api_keys: list[str] = Field(
        default=[],
        description="The api-key middleware's key ids (the first 16 hex digits of the key's SHA-256) "
        "that may open it ([]: any).",
    )
    require_claims: dict[str, str] = Field(
        default={},
        description="JWT claims the upgrade request's token must carry (a list claim must contain the "
        "value) ({}: none).",
    )


class WebSocketMuxConfig(ConfigModel):
    channels: dict[str, ChannelRoute] = Field(
        alias="channel",
        description='`channel "chat-*" { service = "chat" }`: exact names first, then globs in order.',
    )
    buffer: int = Field(
        default=64,
        ge=1,
        description="Messages queued per channel and direction; a channel whose client sends past a full "
        "buffer is closed with `overflow` (the others go on).",
    )
    max_channels: int = Field(default=256, ge=1, description="Channels open at once on one socket.")
    max_message: Size = Field(
        default=1024 * 1024,
        description="Largest envelope or backend message (the socket closes with 1009 past it).",
    )

    def service_references(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Every service named, with where (for the compiler's reference checks)."""
        return [(("channel", name, "service"), route.service) for name, route in self.channels.items()]

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        for name in self.channels:
            if not name or len(name.encode()) > 255:
                out.append((("channel", name), "a channel name is 1 to 255 bytes of UTF-8"))
        return out


declare("service", "websocket_mux", config=WebSocketMuxConfig, impl="services.websocket_mux")
