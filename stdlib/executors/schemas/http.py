"""The `http` executor's configuration (its implementation: executors/http.py)."""

from __future__ import annotations

from pydantic import field_validator

from ...base import ConfigModel, Duration
from ...registry import declare


class HttpExecutorConfig(ConfigModel):
    scale_url: str
    endpoints_url: str
    auth_header_env: str | None = None
    auth_header: str = "authorization"
    headers: dict[str, str] = {}
    poll_interval: Duration = 2.0
    fast_poll_interval: Duration = 0.2
    timeout: Duration = 10.0

    @field_validator("scale_url", "endpoints_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value


declare(
    "executor",
    "http",
    config=HttpExecutorConfig,
    impl="executors.http",
    aliases=("box",),
    creates_replicas=True,
)
