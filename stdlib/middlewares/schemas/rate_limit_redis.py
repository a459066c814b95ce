"""The `rate-limit-redis` middleware's configuration (its implementation: middlewares/rate_limit_redis.py)."""

from __future__ import annotations

from pydantic import Field

from ....compiler.model import SECRET
from ...base import Duration
from ...common.limiters import (
    LimitOptions,
)
from ...registry import declare


class RateLimitRedisConfig(LimitOptions):
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="redis:// or rediss:// URL.", json_schema_extra=SECRET
    )
    fail_open: bool = Field(default=True, description="Let requests through while Redis is unreachable.")
    timeout: Duration = Field(default=0.25, description="Connect and command timeout for Redis.")
    retry_interval: Duration = Field(default=1.0, description="How long Redis is left alone after a failure.")
    key_prefix: str = Field(default="a3s:rl:", description="Prefix of every Redis key (namespace).")


declare("middleware", "rate-limit-redis", config=RateLimitRedisConfig, impl="middlewares.rate_limit_redis")
