"""The `cache` middleware's configuration (its implementation: middlewares/cache.py)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from ....compiler.model import SECRET
from ...base import ConfigModel, Duration, Size
from ...registry import declare


class CacheConfig(ConfigModel):
    max_bytes: Size = Field(
        default=64 * 1024 * 1024,
        description="Memory store: the bound on everything stored (bodies, headers and keys), in bytes.",
    )
    max_object_size: Size = Field(
        default=1024 * 1024, description="A response larger than this (headers and body) is not stored."
    )
    redis_url: str | None = Field(
        default=None,
        description="Keep entries in Redis (redis:// or rediss://) instead of this process's memory.",
        json_schema_extra=SECRET,
    )
    redis_timeout: Duration = Field(default=0.25, description="Connect and command timeout for Redis.")
    retry_interval: Duration = Field(default=1.0, description="How long Redis is left alone after a failure.")
    key_prefix: str = Field(default="a3s:cache:", description="Prefix of every Redis key (namespace).")
    heuristic_max_age: Duration = Field(
        default=86400.0,
        description="Cap on heuristic freshness (10% of the time since Last-Modified); 0 turns heuristics off.",
    )
    keep_stale: Duration = Field(
        default=3600.0, description="How long a stale entry with a validator is kept for revalidation."
    )
    llm: bool = Field(
        default=False, description="Also cache LLM completions (POST chat/completions, messages)."
    )
    llm_ttl: Duration = Field(default=3600.0, description="How long a cached completion is served.")
    llm_scope: str = Field(
        default="key",
        description='Whose entries a request may see: "key" (its API key), "header:NAME", "jwt:CLAIM", "shared".',
    )
    llm_sampled: bool = Field(
        default=False, description="Cache completions with temperature > 0 too (not only deterministic ones)."
    )
    llm_max_request_bytes: Size = Field(
        default=1024 * 1024, description="A larger completion request is proxied uncached."
    )

    @field_validator("llm_scope")
    @classmethod
    def _scope(cls, value: str) -> str:
        kind, _, name = value.partition(":")
        if value in ("key", "shared") or (kind in ("header", "jwt") and name):
            return value
        raise ValueError('llm_scope is "key", "shared", "header:NAME" or "jwt:CLAIM"')

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url is a redis://, rediss:// or unix:// URL")
        return value

    @model_validator(mode="after")
    def _bounds(self) -> CacheConfig:
        if self.redis_url is None and self.max_object_size > self.max_bytes:
            raise ValueError("max_object_size cannot exceed max_bytes")
        return self


declare("middleware", "cache", config=CacheConfig, impl="middlewares.cache")
