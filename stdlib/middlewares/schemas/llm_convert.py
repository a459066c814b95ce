"""The `llm-convert` middleware's configuration (its implementation: middlewares/llm_convert.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ....compiler.model import SECRET
from ...base import ConfigModel, Size
from ...registry import declare


class LlmConvertConfig(ConfigModel):
    client: Literal["openai", "anthropic"] = Field(description="The API the clients of this route speak.")
    upstream: Literal["openai", "anthropic"] = Field(
        description="The API the service's servers speak (OpenAI: also vLLM, llama.cpp, TGI)."
    )
    api_key: str = Field(
        default="",
        description="The upstream's key: sent as `x-api-key` (Anthropic) or a Bearer token (OpenAI); "
        '"" sends none. The client\'s own key is never forwarded.',
        json_schema_extra=SECRET,
    )
    anthropic_version: str = Field(
        default="2023-06-01", description="`anthropic-version` sent to an Anthropic upstream."
    )
    default_max_tokens: int = Field(
        default=4096,
        ge=1,
        description="`max_tokens` for an Anthropic upstream when the OpenAI client sets none.",
    )
    upstream_prefix: str = Field(
        default="/v1", description="The upstream's API root: its endpoints are `<prefix>/messages` and so on."
    )
    tokenize_path: str = Field(
        default="",
        description="An OpenAI-compatible upstream's tokenizer endpoint (vLLM: `/tokenize`) that answers "
        'Anthropic clients\' `count_tokens`; "" (or when it fails): an estimate. Both are marked in '
        "`x-a3s-token-count`.",
    )
    max_body: Size = Field(
        default=32 * 1024 * 1024, description="Largest request (and response) body converted."
    )

    @field_validator("upstream_prefix", "tokenize_path")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if value and (not value.startswith("/") or any(c in value for c in "?# \t\r\n")):
            raise ValueError(f"invalid path {value!r}: a path starting with '/', without '?', '#' or spaces")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _two_apis(self) -> LlmConvertConfig:
        if self.client == self.upstream:
            raise ValueError(f"client and upstream are both {self.client!r}: there is nothing to convert")
        if self.tokenize_path and self.upstream != "openai":
            raise ValueError(
                "tokenize_path is for an OpenAI-compatible upstream (Anthropic counts tokens itself)"
            )
        return self


declare("middleware", "llm-convert", config=LlmConvertConfig, impl="middlewares.llm_convert")
