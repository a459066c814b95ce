"""The `discovery` provider's configuration (its implementation: providers/discovery.py)."""

from __future__ import annotations

from pydantic import Field, field_validator

from ...base import ConfigModel, Duration
from ...registry import declare


class DiscoveryConfig(ConfigModel):
    seeds: list[str] = Field(
        min_length=1,
        description='Base URLs of the services to ask: `"http://10.0.0.5:8000"` or, as A3S writes '
        'them, `{ url = "http://10.0.0.5:8000" }`.',
    )
    interval: Duration = Field(default=30.0, gt=0, description="How often each seed is asked and probed.")
    timeout: Duration = Field(default=5.0, gt=0, description="How long one request to a seed may take.")
    unhealthy_threshold: int = Field(
        default=2, ge=1, description="Failed health checks in a row after which a seed's service is removed."
    )
    entrypoints: list[str] = Field(default=[], description="The routers' entrypoints (empty: all).")

    @field_validator("seeds", mode="before")
    @classmethod
    def _a3s_form(cls, value: object) -> object:
        """A3S's `{ url = ... }` seeds, read as their URLs."""
        if isinstance(value, list):
            return [
                item["url"] if isinstance(item, dict) and set(item) == {"url"} else item for item in value
            ]
        return value

    @field_validator("seeds")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for seed in value:
            if not seed.startswith(("http://", "https://")):
                raise ValueError(f"a seed is an http:// or https:// base URL, got {seed!r}")
        return value


declare("provider", "discovery", config=DiscoveryConfig, impl="providers.discovery")
