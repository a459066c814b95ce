"""The `headers` middleware's configuration (its implementation: middlewares/headers.py)."""

from __future__ import annotations

from pydantic import Field, field_validator

from ....compiler.model import SECRET_ENTRIES
from ...base import ConfigModel
from ...common.fields import FRAMING, HOP_BY_HOP, check_field_name, check_field_value
from ...registry import declare


def _name(name: str) -> str:
    check_field_name(name)
    if name.lower() in FRAMING | HOP_BY_HOP:
        raise ValueError(f"{name!r} frames the message and cannot be changed by the headers middleware")
    return name


def _check_map(value: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
    for name, values in value.items():
        _name(name)
        for item in [values] if isinstance(values, str) else values:
            check_field_value(name, item)
    return value


class HeadersConfig(ConfigModel):
    request_headers: dict[str, str] = Field(
        default={}, description='Set on the request ("" removes). A3S key.', json_schema_extra=SECRET_ENTRIES
    )
    response_headers: dict[str, str] = Field(
        default={}, description='Set on the response ("" removes). A3S key.', json_schema_extra=SECRET_ENTRIES
    )
    add_request_headers: dict[str, str | list[str]] = Field(
        default={}, description="Appended to the request.", json_schema_extra=SECRET_ENTRIES
    )
    add_response_headers: dict[str, str | list[str]] = Field(
        default={}, description="Appended to the response.", json_schema_extra=SECRET_ENTRIES
    )
    remove_request_headers: list[str] = Field(default=[], description="Removed from the request.")
    remove_response_headers: list[str] = Field(default=[], description="Removed from the response.")

    @field_validator("request_headers", "response_headers")
    @classmethod
    def _sets(cls, value: dict[str, str]) -> dict[str, str]:
        _check_map(dict(value))
        return value

    @field_validator("add_request_headers", "add_response_headers")
    @classmethod
    def _adds(cls, value: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        return _check_map(value)

    @field_validator("remove_request_headers", "remove_response_headers")
    @classmethod
    def _removes(cls, value: list[str]) -> list[str]:
        for name in value:
            _name(name)
        return value


declare("middleware", "headers", config=HeadersConfig, impl="middlewares.headers")
