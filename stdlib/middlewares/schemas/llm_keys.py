"""The `llm-keys` middleware's configuration (its implementation: middlewares/llm_keys.py)."""

from __future__ import annotations

import fnmatch
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ....compiler.model import SECRET
from ...base import ConfigModel, Duration, Size
from ...common.fields import check_field_name
from ...common.key_spec import KeySpec
from ...registry import declare


class ConfigKey(KeySpec):
    key: str | None = Field(
        default=None, description='The key clients send (e.g. "${ALICE_KEY}").', json_schema_extra=SECRET
    )
    key_hash: str | None = Field(
        default=None,
        description="Or its hex digest: SHA-256, or HMAC-SHA256 under `hash_secret` when that is set.",
    )

    @field_validator("key_hash")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None:
            value = value.lower().removeprefix("sha256:")
            if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
                raise ValueError("key_hash must be 64 hex digits (a SHA-256 digest)")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> ConfigKey:
        if (self.key is None) == (self.key_hash is None):
            raise ValueError("each key needs exactly one of key or key_hash")
        if self.key is not None and len(self.key) < 16:
            raise ValueError("a key shorter than 16 characters is guessable: use a long random one")
        return self


class SharedLimit(ConfigModel):
    per: Literal["user", "model", "global"] = Field(description="What the limit is counted per.")
    rpm: int | None = Field(default=None, gt=0, description="Requests per minute (sliding).")
    tpm: int | None = Field(default=None, gt=0, description="Tokens per minute (sliding).")

    @model_validator(mode="after")
    def _something(self) -> SharedLimit:
        if self.rpm is None and self.tpm is None:
            raise ValueError("a limit needs rpm or tpm")
        return self


class Price(ConfigModel):
    input: float = Field(ge=0, description="USD per million input tokens.")
    output: float = Field(ge=0, description="USD per million output tokens.")


def _blocks_by_name(value: Any) -> Any:
    """`keys "alice" { ... }` blocks arrive as a list of one-entry dicts: merge them into one map."""
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        merged: dict[str, Any] = {}
        for item in value:
            for name, body in item.items():
                if name in merged:
                    raise ValueError(f"key {name!r} is defined twice")
                merged[name] = body
        return merged
    return value


class LlmKeysConfig(ConfigModel):
    keys: dict[str, ConfigKey] = Field(default={}, description="Keys written in the config, by name.")
    store_file: str | None = Field(
        default=None, description="JSON file for keys created through the admin API (without redis_url)."
    )
    redis_url: str | None = Field(
        default=None,
        description="Keep admin-created keys and every limit in Redis, shared by all replicas.",
        json_schema_extra=SECRET,
    )
    key_prefix: str = Field(default="a3s:llm:", description="Prefix of every Redis key (namespace).")
    hash_secret: str | None = Field(
        default=None, description="HMAC-SHA256 secret keys are hashed under.", json_schema_extra=SECRET
    )
    user_header: str | None = Field(default=None, description="Header naming the end user (per-user limits).")
    user_claim: str | None = Field(
        default=None, description="JWT claim naming the end user (a jwt middleware first)."
    )
    limits: list[SharedLimit] = Field(default=[], description="Limits per user, per model and global.")
    prices: dict[str, Price] = Field(default={}, description="Model glob -> price, for budgets in usd.")
    default_max_tokens: int = Field(
        default=4096, gt=0, description="Output reserved for a request that sets no max_tokens."
    )
    bytes_per_token: float = Field(
        default=4.0, gt=0, description="Prompt size estimate: body bytes per token."
    )
    max_body: Size = Field(default=8 << 20, description="Largest request body read (JSON with images).")
    fail_open: bool = Field(default=False, description="Let requests through unmetered while Redis is down.")
    timeout: Duration = Field(default=0.25, gt=0, description="Connect and command timeout for Redis.")
    retry_interval: Duration = Field(
        default=1.0, ge=0, description="How long Redis is left alone after a failure."
    )
    refresh: Duration = Field(default=2.0, ge=0, description="How long a stored key's lookup is cached.")

    _merge_keys = field_validator("keys", mode="before")(_blocks_by_name)
    _merge_prices = field_validator("prices", mode="before")(_blocks_by_name)

    @field_validator("user_header")
    @classmethod
    def _header(cls, value: str | None) -> str | None:
        return check_field_name(value) if value is not None else None

    @model_validator(mode="after")
    def _coherent(self) -> LlmKeysConfig:
        if self.user_header is not None and self.user_claim is not None:
            raise ValueError("set either user_header or user_claim, not both")
        if self.store_file is not None and self.redis_url is not None:
            raise ValueError("set either store_file or redis_url: with redis_url keys are kept in Redis")
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must be a redis://, rediss:// or unix:// URL")
        for name, key in self.keys.items():
            if key.budget_unit == "usd" and not self.prices:
                raise ValueError(f"key {name!r} has a budget in usd: set prices (USD per million tokens)")
        return self

    def price(self, model: str | None) -> Price | None:
        """The price of `model`: an exact entry first, then the first glob that matches."""
        if model is None:
            return None
        found = self.prices.get(model)
        if found is None:
            found = next((p for glob, p in self.prices.items() if fnmatch.fnmatchcase(model, glob)), None)
        return found


declare("middleware", "llm-keys", config=LlmKeysConfig, impl="middlewares.llm_keys")
