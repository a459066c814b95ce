"""The `channel-webchat` middleware's configuration (its implementation: channels/webchat.py)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from ....compiler.model import SECRET
from ...common.fields import as_list, check_field_name
from ...common.jose_keys import load_public_key
from ...registry import declare
from ._options import ChannelOptions


class WebChatChannelConfig(ChannelOptions):
    jwt_secret: str | None = Field(
        default=None,
        description="HS256/384/512 secret of the widget's tokens.",
        json_schema_extra=SECRET,
    )
    jwt_public_key: str | None = Field(default=None, description="PEM key verifying RS/PS/ES/EdDSA tokens.")
    issuer: list[str] = Field(default=[], description="Accepted `iss` values (a string or a list).")
    audience: list[str] = Field(default=[], description="Accepted `aud` values (a string or a list).")
    api_keys: list[str] = Field(
        default=[], description="Keys a server-side client may send instead.", json_schema_extra=SECRET
    )
    api_key_header: str = Field(default="X-API-Key", description="Header carrying an API key.")

    _as_lists = field_validator("issuer", "audience", mode="before")(as_list)

    @field_validator("api_key_header")
    @classmethod
    def _header(cls, value: str) -> str:
        return check_field_name(value)

    @field_validator("jwt_public_key")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        if value:
            load_public_key(value)  # a malformed key is a compile-time error
        return value

    @field_validator("api_keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        return [key for key in value if key.strip()]  # an unset ${VAR:-} adds no key

    @model_validator(mode="after")
    def _credentials(self) -> WebChatChannelConfig:
        if self.jwt_secret is None and self.jwt_public_key is None and not self.api_keys:
            raise ValueError("channel-webchat needs jwt_secret, jwt_public_key or api_keys")
        return self


declare("middleware", "channel-webchat", config=WebChatChannelConfig, impl="channels.webchat")
