"""The `model_router` service kind's configuration (its implementation: services/model_router.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ....compiler.model import SECRET
from ...base import ConfigModel, Duration, Size
from ...registry import declare
from ..model_table import GLOB_CHARS, alias_loop, glob_error

__all__ = ["ModelRoute", "ModelRouterConfig", "Problem"]

Problem = tuple[tuple[str | int, ...], str]
"""(the key path inside the block, what is wrong with it)"""


class ModelRoute(ConfigModel):
    """A `model "<name or glob>" { ... }` block."""

    service: str = Field(description="The service that serves these models.")
    upstream_model: str | None = Field(
        default=None, description="The model name sent upstream (the `model` field is rewritten)."
    )
    fallbacks: list[str] = Field(
        default=[],
        description="Models (names or aliases) tried in order on 429, 5xx, connect failure or timeout.",
    )
    api: Literal["openai", "anthropic"] | None = Field(
        default=None,
        description="The API the service speaks; a client of the other one is converted to it and back "
        "(stdlib/llm). Unset: the client's own.",
    )
    api_key: str = Field(
        default="",
        description="The service's key, sent instead of the client's credentials (`x-api-key` to Anthropic, "
        'a Bearer token to OpenAI); "" forwards the client\'s own (and sends none when converting).',
        json_schema_extra=SECRET,
    )


class ModelRouterConfig(ConfigModel):
    routes: dict[str, ModelRoute] = Field(
        alias="model",
        description='`model "gpt-*" { service = "openai" }`: exact names first, then globs in order.',
    )
    aliases: dict[str, str] = Field(default={}, description='`{ fast = "claude-haiku-4-5" }`')
    default_model: str | None = Field(
        default=None, description="The model of a request that names none (unset: such a request gets 400)."
    )
    max_body: Size = Field(
        default=8 * 1024 * 1024, description="Largest request body read for its model (413 past it)."
    )
    first_byte_timeout: Duration | None = Field(
        default=None,
        description="Time to the first response byte per attempt; past it the next fallback is tried "
        "(unset: the target service's timeouts apply).",
    )
    max_park: Duration = Field(
        default=300.0, gt=0, description="Longest an upstream's 429 `Retry-After` parks it."
    )

    def service_references(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Every service named, with where (for the compiler's reference checks)."""
        return [(("model", pattern, "service"), route.service) for pattern, route in self.routes.items()]

    def problems(self) -> list[Problem]:
        """What the models cannot express; each makes the service a compile error."""
        from ..model_table import ModelTable

        out: list[Problem] = []
        for pattern in self.routes:
            if not GLOB_CHARS.isdisjoint(pattern) or not pattern.strip():
                error = glob_error(pattern)
                if error is not None:
                    out.append((("model", pattern), error))
        table = ModelTable(self.routes, self.aliases)
        for name in self.aliases:
            loop = alias_loop(self.aliases, name)
            if loop is not None:
                if name == min(loop):  # once per loop, at its first name
                    out.append((("aliases", name), "alias loop: " + " -> ".join(loop)))
            elif table.target(name) is None:
                out.append(
                    (
                        ("aliases", name),
                        f"alias '{name}' resolves to '{table.resolve(name)}', which no model block matches",
                    )
                )
        for pattern, route in self.routes.items():
            for index, fallback in enumerate(route.fallbacks):
                if table.target(fallback) is None:
                    out.append(
                        (
                            ("model", pattern, "fallbacks", index),
                            f"fallback '{fallback}' matches no model block",
                        )
                    )
        if self.default_model is not None and table.target(self.default_model) is None:
            out.append((("default_model",), f"default_model '{self.default_model}' matches no model block"))
        return out


declare("service", "model_router", config=ModelRouterConfig, impl="services.model_router")
