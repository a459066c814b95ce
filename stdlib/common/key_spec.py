"""What a virtual key of `llm-keys` allows: the config block of a key, and the admin API's body.

Config only (pydantic): the compiler imports it, so it imports no runtime library.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from ..base import ConfigModel, Duration

__all__ = ["KeySpec"]


class KeySpec(ConfigModel):
    """What a key allows (a config key's block, or the body of `POST /api/gateway/keys`)."""

    models: list[str] = Field(default=[], description="Model globs the key may use (empty: every model).")
    rpm: int | None = Field(default=None, gt=0, description="Requests per minute (sliding).")
    tpm: int | None = Field(default=None, gt=0, description="Tokens (input + output) per minute (sliding).")
    budget: float | None = Field(default=None, gt=0, description="Most tokens or money the key may spend.")
    budget_unit: Literal["tokens", "usd"] = Field(default="tokens", description="What `budget` counts.")
    budget_period: Duration = Field(default=0.0, ge=0, description="Budget renewal period (0: lifetime).")
    expires: datetime | None = Field(default=None, description="When the key stops working (RFC 3339).")
    tier: str | None = Field(
        default=None, description='A tier for `priority` rules (`key = "tier"`), e.g. "critical".'
    )

    @field_validator("expires")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("expires needs a time zone, e.g. 2027-01-01T00:00:00Z")
        return value
