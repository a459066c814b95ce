"""The `process` executor's configuration (its implementation: executors/process.py)."""

from __future__ import annotations

import re
import shlex
from typing import Literal

from pydantic import field_validator

from ...base import ConfigModel, Duration
from ...registry import declare

_PLACEHOLDERS = {"port", "host", "replica"}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ProcessConfig(ConfigModel):
    command: str
    health_path: str = "/health"
    ready_timeout: Duration = 120.0
    stop_grace: Duration = 10.0
    env: dict[str, str] = {}
    host: str = "127.0.0.1"
    cwd: str | None = None
    probe_interval: Duration = 0.1
    restart_backoff: Duration = 1.0
    drain_timeout: Duration = 60.0
    output: Literal["inherit", "discard"] = "inherit"

    @field_validator("command")
    @classmethod
    def _command(cls, value: str) -> str:
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"command cannot be split into arguments: {exc}") from None
        if not argv:
            raise ValueError("command is empty")
        _check_placeholders(value)
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for text in value.values():
            _check_placeholders(text)
        return value

    @field_validator("health_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f'health_path must start with "/", got {value!r}')
        return value


def _check_placeholders(text: str) -> None:
    # Only `{identifier}` is a placeholder; other braces (JSON arguments) are literal text.
    unknown = set(_PLACEHOLDER.findall(text)) - _PLACEHOLDERS
    if unknown:
        raise ValueError(
            f"unknown placeholder {{{sorted(unknown)[0]}}}: use {{port}}, {{host}} or {{replica}}"
        )


declare("executor", "process", config=ProcessConfig, impl="executors.process", creates_replicas=True)
