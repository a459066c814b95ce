"""The `api-key` middleware's configuration (its implementation: middlewares/api_key.py)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from ....compiler.model import SECRET
from ...base import ConfigModel
from ...common.auth import env_value, read_lines
from ...common.fields import check_field_name
from ...registry import declare


class ApiKeyConfig(ConfigModel):
    header: str = Field(default="X-API-Key", description="Header carrying the key (A3S key).")
    keys: list[str] = Field(default=[], description="Accepted keys (A3S key).", json_schema_extra=SECRET)
    keys_env: str | None = Field(default=None, description="Environment variable with comma-separated keys.")
    keys_file: str | None = Field(default=None, description="File with one key per line.")
    query_param: str | None = Field(default=None, description="Query parameter also accepted.")
    scheme: str | None = Field(
        default=None, description='Scheme before the key in the header, e.g. "Bearer".'
    )
    forward_key: bool = Field(default=False, description="Keep the key in the forwarded request.")

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        return check_field_name(value)

    @field_validator("keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        if any(not key.strip() for key in value):
            raise ValueError("keys cannot be empty strings")
        return value

    @model_validator(mode="after")
    def _source(self) -> ApiKeyConfig:
        if not self.keys and self.keys_env is None and self.keys_file is None:
            raise ValueError("api-key needs keys: set keys, keys_env or keys_file")
        if self.keys_file is not None:
            read_lines(self.keys_file)  # a missing or unreadable file is a compile-time error
        return self

    def load_keys(self, env: dict[str, str] | None = None) -> list[str]:
        """Every configured key: the list, the environment variable and the file."""
        found = list(self.keys)
        if self.keys_env is not None:
            value = env_value(self.keys_env, env or {})
            found += [key.strip() for key in (value or "").split(",") if key.strip()]
        if self.keys_file is not None:
            found += read_lines(self.keys_file)
        return found


declare("middleware", "api-key", config=ApiKeyConfig, impl="middlewares.api_key")
