"""The `body-limit` middleware's configuration (its implementation: middlewares/body_limit.py)."""

from __future__ import annotations

from pydantic import Field

from ...base import ConfigModel, Size
from ...registry import declare


class BodyLimitConfig(ConfigModel):
    max_body_bytes: Size = Field(description='Largest request body accepted, e.g. 1048576 or "1MiB".')


declare("middleware", "body-limit", config=BodyLimitConfig, impl="middlewares.body_limit")
