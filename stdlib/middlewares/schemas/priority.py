"""The `priority` middleware's configuration (its implementation: middlewares/priority.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ...base import ConfigModel
from ...common.priority import PriorityName
from ...registry import declare

_SOURCES = ("header", "claim", "key", "path")


class PriorityRule(ConfigModel):
    """One rule: where to look (exactly one of `header`, `claim`, `key`, `path`), which values
    match (`values`, globs; empty: any value), and the class they give (`priority`; absent: the
    value itself names a class, e.g. `X-Priority: high`)."""

    header: str | None = Field(default=None, description="A request header's value.")
    claim: str | None = Field(
        default=None, description="A claim of the JWT a `jwt` middleware verified earlier (`a.b`: nested)."
    )
    key: Literal["tier", "name"] | None = Field(
        default=None, description="The `tier` or `name` of the virtual key an `llm-keys` middleware checked."
    )
    path: str | None = Field(default=None, description="A glob the request path must match (`/v1/batches*`).")
    values: tuple[str, ...] = Field(default=(), description="Globs the value must match (empty: any value).")
    priority: PriorityName | None = Field(
        default=None, description="The class a match gives (absent: the value names the class)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> PriorityRule:
        given = [name for name in _SOURCES if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"a rule needs exactly one of {', '.join(_SOURCES)} (it has {len(given)})")
        if self.path is not None and (self.values or self.priority is None):
            raise ValueError("a path rule takes no values (its glob is the value) and needs a priority")
        return self


class PriorityConfig(ConfigModel):
    rules: list[PriorityRule] = Field(
        default=[], description="Tried in order; the first that matches decides."
    )
    default: PriorityName = Field(default="normal", description="The class of a request no rule matched.")


declare("middleware", "priority", config=PriorityConfig, impl="middlewares.priority")
