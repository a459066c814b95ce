"""The `retry` middleware's configuration (its implementation: middlewares/retry.py)."""

from __future__ import annotations

from pydantic import Field, field_validator

from ...base import ConfigModel, Duration, Size
from ...registry import declare


class RetryConfig(ConfigModel):
    max_retries: int = Field(default=2, ge=0, le=100, description="Retries after the first attempt.")
    retry_interval_ms: int = Field(default=100, ge=0, description="The first backoff, in milliseconds.")
    max_interval: Duration = Field(default=2.0, description="The longest backoff.")
    retry_on_statuses: tuple[int, ...] = (502, 503, 504)
    max_replay_body: Size = Field(default=64 * 1024, description="Largest request body kept for a retry.")
    idempotent_only: bool = Field(default=False, description="Retry statuses for idempotent methods only.")

    @field_validator("retry_on_statuses")
    @classmethod
    def _statuses(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        bad = sorted(s for s in value if not 400 <= s <= 599)
        if bad:
            raise ValueError(f"retry_on_statuses must be 4xx or 5xx statuses, got {bad}")
        return tuple(sorted(set(value)))


declare("middleware", "retry", config=RetryConfig, impl="middlewares.retry")
