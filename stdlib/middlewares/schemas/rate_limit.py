"""The `rate-limit` middleware's configuration (its implementation: middlewares/rate_limit.py)."""

from __future__ import annotations

from pydantic import Field

from ...common.limiters import LimitOptions
from ...registry import declare


class RateLimitConfig(LimitOptions):
    max_keys: int = Field(default=100_000, ge=1, description="Most clients tracked at once (LRU beyond).")


declare("middleware", "rate-limit", config=RateLimitConfig, impl="middlewares.rate_limit")
