"""The `conversation-affinity` balancer's configuration (its implementation: balancers/affinity.py)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from ...base import ConfigModel, Duration, Size
from ...common.fields import check_field_name
from ...registry import declare

SOURCES = ("header", "cookie", "body", "jwt")


class AffinityConfig(ConfigModel):
    key: list[str] = Field(
        default=["header:X-Conversation-Id", "body:metadata.conversation_id", "body:user"],
        description='Where the conversation id is read, the first found wins: "header:<Name>", '
        '"cookie:<name>", "body:<json.path>" (dots reach into objects, numbers into arrays) or '
        '"jwt:<claim>" (a jwt middleware in front verified the token; dots reach nested claims).',
    )
    load_factor: float = Field(
        default=1.25,
        gt=1,
        description="c = 1 + ε: no backend holds more than ceil(c × average) requests in flight.",
    )
    ttl: Duration = Field(default=1800.0, gt=0, description="A conversation idle this long is forgotten.")
    max_entries: int = Field(default=100_000, ge=1, description="Most conversations remembered (LRU).")
    points: int = Field(default=160, ge=1, le=10_000, description="Ring points per unit of server weight.")
    max_body: Size = Field(
        default=8 * 1024 * 1024,
        description="Largest body read for a body: key (a larger one is refused with 413).",
    )

    @field_validator("key", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("key")
    @classmethod
    def _valid_sources(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one place to read the conversation id from")
        for source in value:
            kind, _, name = source.partition(":")
            if kind not in SOURCES or not name.strip() or ".." in name or name.startswith("."):
                raise ValueError(
                    f'invalid key {source!r}: use "header:<Name>", "cookie:<name>", '
                    '"body:<json.path>" or "jwt:<claim>"'
                )
            if kind == "header":
                check_field_name(name)
        return value


declare(
    "balancer",
    "conversation-affinity",
    config=AffinityConfig,
    impl="balancers.affinity",
    aliases=("affinity",),
)
