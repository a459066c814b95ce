"""The `strip-prefix` middleware's configuration (its implementation: middlewares/strip_prefix.py)."""

from __future__ import annotations

from pydantic import Field, field_validator

from ...base import ConfigModel
from ...registry import declare


class StripPrefixConfig(ConfigModel):
    prefixes: list[str] = Field(
        min_length=1, description="Prefixes tried in order; the first match is removed."
    )

    @field_validator("prefixes")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        for prefix in value:
            if not prefix.startswith("/") or any(c in prefix for c in "?# \t\r\n"):
                raise ValueError(
                    f"invalid prefix {prefix!r}: a path starting with '/', without '?', '#' or spaces"
                )
        return value


declare("middleware", "strip-prefix", config=StripPrefixConfig, impl="middlewares.strip_prefix")
