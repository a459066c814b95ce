"""The `kairos` service kind's configuration (its implementation: services/kairos.py)."""

from __future__ import annotations

import re

from pydantic import Field

from ....compiler.model import SECRET
from ...base import ConfigModel, Duration, Size
from ...registry import declare
from .model_router import Problem

__all__ = ["KairosCandidate", "KairosConfig"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class KairosCandidate(ConfigModel):
    """A `candidate "<name>" { ... }` block: a service the model may choose, and what it is for."""

    service: str | None = Field(default=None, description="The service (unset: the candidate's name).")
    description: str = Field(description="What requests the service is for, in a sentence the model reads.")


class KairosConfig(ConfigModel):
    llm_service: str = Field(
        description="The service the question goes to: an OpenAI-compatible chat completions server "
        "(its servers may be this gateway's own entrypoint, to reach a model through its routes)."
    )
    model: str = Field(description="The model asked (the request's `model`).")
    path: str = Field(default="/v1/chat/completions", description="The path the question is POSTed to.")
    api_key: str = Field(
        default="", description="Sent as a Bearer token with the question.", json_schema_extra=SECRET
    )
    candidates: dict[str, KairosCandidate] = Field(
        alias="candidate",
        description='`candidate "code" { service = "...", description = "..." }`, in order.',
    )
    default: str = Field(
        description="The candidate taken on a timeout, an error or an answer that names none."
    )
    deadline: Duration = Field(
        default=0.3, gt=0, description="Longest wait for the model's whole answer; past it, the default."
    )
    max_text: int = Field(
        default=2000,
        ge=1,
        description="Characters of the request's text put in the question (the first ones).",
    )
    cache_size: int = Field(default=1024, ge=0, description="Decisions kept (0: no cache).")
    cache_ttl: Duration = Field(default=600.0, gt=0, description="How long a decision is kept.")
    max_body: Size = Field(default=8 * 1024 * 1024, description="Largest request body read (413 past it).")

    def service_of(self, name: str) -> str:
        return self.candidates[name].service or name

    def service_references(self) -> list[tuple[tuple[str | int, ...], str]]:
        out: list[tuple[tuple[str | int, ...], str]] = [(("llm_service",), self.llm_service)]
        for name, candidate in self.candidates.items():
            at: tuple[str | int, ...] = (
                ("candidate", name, "service") if candidate.service else ("candidate", name)
            )
            out.append((at, self.service_of(name)))
        return out

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        if not self.candidates:
            out.append((("candidate",), "a kairos service needs at least one candidate"))
        for name in self.candidates:
            if not _NAME.fullmatch(name):
                out.append(
                    (
                        ("candidate", name),
                        f"candidate name '{name}' must be one word (letters, digits, _ . -)",
                    )
                )
        folded = [name.casefold() for name in self.candidates]
        for name in self.candidates:
            if folded.count(name.casefold()) > 1:
                out.append((("candidate", name), f"candidate '{name}': names must differ in more than case"))
        if self.candidates and self.default not in self.candidates:
            known = ", ".join(self.candidates)
            out.append((("default",), f"default '{self.default}' is not a candidate (candidates: {known})"))
        if not self.path.startswith("/"):
            out.append((("path",), "path must start with /"))
        return out


declare("service", "kairos", config=KairosConfig, impl="services.kairos")
