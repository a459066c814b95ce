"""The `cors` middleware's configuration (its implementation: middlewares/cors.py)."""

from __future__ import annotations

import re
from collections.abc import Callable

from pydantic import Field, field_validator

from ...base import ConfigModel, Duration
from ...common.fields import check_field_name
from ...registry import declare

DEFAULT_ORIGINS = ["*"]
DEFAULT_METHODS = ["GET", "POST", "PUT", "DELETE", "OPTIONS"]
DEFAULT_HEADERS = ["Content-Type", "Authorization"]
_ORIGIN = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[a-zA-Z0-9.*-]+(:(\d+|\*))?$")


def _default(default: list[str]) -> Callable[[object], object]:
    """A before-validator: absent or empty means the A3S default (as A3S treats an empty list)."""

    def fill(value: object) -> object:
        return list(default) if value is None or value == [] else value

    return fill


class CorsConfig(ConfigModel):
    allowed_origins: list[str] = Field(default=DEFAULT_ORIGINS, description='Origins or patterns, or "*".')
    allowed_methods: list[str] = Field(default=DEFAULT_METHODS, description='Methods, or "*".')
    allowed_headers: list[str] = Field(default=DEFAULT_HEADERS, description='Request headers, or "*".')
    expose_headers: list[str] = Field(default=[], description="Response headers scripts may read.")
    allow_credentials: bool = Field(default=False, description="Allow cookies and HTTP auth.")
    max_age: Duration = Field(default=86400.0, description="How long browsers cache a preflight.")

    _fill_origins = field_validator("allowed_origins", mode="before")(_default(DEFAULT_ORIGINS))
    _fill_methods = field_validator("allowed_methods", mode="before")(_default(DEFAULT_METHODS))
    _fill_headers = field_validator("allowed_headers", mode="before")(_default(DEFAULT_HEADERS))

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"invalid origin {origin!r}: use scheme://host[:port] without a path, "
                    'e.g. "https://app.example.com" or "https://*.example.com", or "*"'
                )
        return value

    @field_validator("allowed_methods", "allowed_headers", "expose_headers")
    @classmethod
    def _tokens(cls, value: list[str]) -> list[str]:
        for item in value:
            if item != "*":
                check_field_name(item)
        return value


declare("middleware", "cors", config=CorsConfig, impl="middlewares.cors")
