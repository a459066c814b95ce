"""The `redis` provider's configuration (its implementation: providers/redis.py)."""

from __future__ import annotations

from pydantic import Field

from ....compiler.model import SECRET
from ...base import ConfigModel, Duration
from ...registry import declare


class RedisProviderConfig(ConfigModel):
    endpoints: list[str] = Field(
        default=["127.0.0.1:6379"],
        min_length=1,
        description="Redis servers, `host:port` or a `redis://` URL; tried in turn.",
    )
    root_key: str = Field(default="a3s", min_length=1, description="The prefix of the configuration's keys.")
    db: int = Field(default=0, ge=0, description="The database, unless an endpoint's URL names one.")
    password: str | None = Field(
        default=None, json_schema_extra=SECRET, description="Unless an endpoint's URL carries one."
    )
    poll_interval: Duration = Field(
        default=5.0,
        gt=0,
        description="How often the keys are read again when the server sends no keyspace notifications.",
    )
    timeout: Duration = Field(default=5.0, gt=0, description="Connecting and reading the keys.")


declare("provider", "redis", config=RedisProviderConfig, impl="providers.redis")
