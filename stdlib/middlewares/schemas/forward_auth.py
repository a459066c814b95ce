"""The `forward-auth` middleware's configuration (its implementation: middlewares/forward_auth.py)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator

from ...base import ConfigModel, Duration
from ...common.fields import check_field_name
from ...registry import declare


class ForwardAuthConfig(ConfigModel):
    forward_auth_url: str = Field(description="The auth service's URL (A3S key).")
    forward_auth_response_headers: list[str] = Field(
        default=[], description="Headers copied onto the request."
    )
    auth_request_headers: list[str] | None = Field(default=None, description="Headers sent (default: all).")
    method: str | None = Field(
        default=None, description="Method of the auth request (default: the original)."
    )
    timeout: Duration = Field(default=5.0, gt=0, description="Timeout for connecting and for each read.")
    tls_verify: bool = Field(default=True, description="Verify the auth service's TLS certificate.")

    @field_validator("forward_auth_url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            url = urlsplit(value)
            url.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            raise ValueError(f"invalid URL {value!r}") from None
        if url.scheme not in ("http", "https") or not url.hostname or any(c in value for c in " \t\r\n"):
            raise ValueError(
                f"forward_auth_url must be an http:// or https:// URL with a host, got {value!r}"
            )
        return value

    @field_validator("forward_auth_response_headers", "auth_request_headers")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        for name in value or ():
            check_field_name(name)
        return value

    @field_validator("method")
    @classmethod
    def _method(cls, value: str | None) -> str | None:
        if value is not None:
            check_field_name(value)
            return value.upper()
        return value


declare("middleware", "forward-auth", config=ForwardAuthConfig, impl="middlewares.forward_auth")
