"""What every channel's configuration has: the body bound, the dedup window, the forward path."""

from __future__ import annotations

from pydantic import Field, field_validator

from ...base import ConfigModel, Duration, Size

__all__ = ["ChannelOptions"]


class ChannelOptions(ConfigModel):
    max_body_bytes: Size = Field(
        default=1024 * 1024, gt=0, description='Largest webhook body read (413 beyond), e.g. "256KiB".'
    )
    dedup_window: Duration = Field(
        default=600.0, ge=0, description='How long a delivery id is remembered ("0s": no deduplication).'
    )
    forward_path: str | None = Field(
        default=None, description="Target the normalised event is POSTed to (default: the request's own)."
    )

    @field_validator("forward_path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or any(c in value for c in " \t\r\n#")):
            raise ValueError(f"forward_path must be an origin-form target such as /events, got {value!r}")
        return value
