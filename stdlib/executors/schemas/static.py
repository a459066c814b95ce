"""The `static` executor's configuration (its implementation: executors/static.py)."""

from __future__ import annotations

from pydantic import field_validator

from ...base import ConfigModel, Duration
from ...registry import declare


class StaticConfig(ConfigModel):
    servers: list[str] = []
    health_path: str | None = None
    interval: Duration = 2.0
    timeout: Duration = 2.0

    @field_validator("health_path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f'health_path must start with "/", got {value!r}')
        return value


declare("executor", "static", config=StaticConfig, impl="executors.static")
