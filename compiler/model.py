"""The base of every configuration model: frozen, and strict about unknown keys.

Shared by the compiler's top-level schema and by every node kind's config in stdlib/, so a
misspelt key anywhere is a compile-time error with a "did you mean" hint.
"""

from __future__ import annotations

import functools
import hashlib
import json
import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class ConfigModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _single_block_as_list(cls, data: Any) -> Any:
        """A block written once (`servers { ... }`) arrives as a dict where a list is expected.

        HCL has no way to say "a list of one block" other than writing the block once, so a dict
        given for a list-of-models field is taken as a one-element list.
        """
        if not isinstance(data, dict):
            return data
        fixed: dict[str, Any] | None = None
        for name, alias in _list_fields(cls):
            key = alias if alias is not None and alias in data else name
            value = data.get(key)
            if isinstance(value, dict):
                fixed = fixed if fixed is not None else dict(data)
                fixed[key] = [value]
        return fixed if fixed is not None else data


@functools.cache
def _list_fields(model: type[BaseModel]) -> tuple[tuple[str, str | None], ...]:
    """(name, alias) of the fields of `model` that hold a list: worked out once per model, not on
    every validation (a 10,000-router file validates as many router blocks)."""
    return tuple(
        (name, field.alias)
        for name, field in model.model_fields.items()
        if typing.get_origin(_strip_optional(field.annotation)) is list
    )


def _strip_optional(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


# Marks a field whose value must never be printed (`Field(..., json_schema_extra=SECRET)`):
# `compile --emit ir` (and the admin API's config and graph) shows a short hash instead, so a
# changed secret is still visible in a diff.
SECRET: dict[str, Any] = {"secret": True}
# Marks a free-form map whose entry names the user chooses (headers, an executor's or a
# balancer's options): an entry, at any depth, whose name says it holds a credential
# (`Authorization`, `X-Api-Key`, `HF_TOKEN` ...) is hashed like a SECRET field, the rest shown.
SECRET_ENTRIES: dict[str, Any] = {"secret": "entries"}


# Marks a key that only some protocols act on: set where another protocol reads the block, it is
# a compile error, not a no-op (lower.py). A service is "http" (servers by url) or "tcp" (by
# address; UDP routers use these too); an entrypoint is "http", "tcp" or "udp".
def only_for(*protocols: str) -> dict[str, Any]:
    return {"protocols": protocols}


HTTP_ONLY: dict[str, Any] = only_for("http")
TCP_ONLY: dict[str, Any] = only_for("tcp")

# Read lower case with `-` as `_`. A typed option is marked SECRET where it is declared; these
# words are only for names a schema cannot know in advance.
_CREDENTIAL_WORDS = ("password", "passwd", "secret", "token", "credential", "authorization", "cookie")
_CREDENTIAL_ENDINGS = ("_key", "_keys", "apikey", "htpasswd")
_NOT_CREDENTIAL_ENDINGS = ("_file", "_path", "_header", "_name", "_source", "_env")


def names_credential(name: str) -> bool:
    """Whether a header, variable or option called `name` holds a credential."""
    lowered = name.lower().replace("-", "_")
    if lowered.endswith(_NOT_CREDENTIAL_ENDINGS):
        return False
    return lowered.endswith(_CREDENTIAL_ENDINGS) or any(word in lowered for word in _CREDENTIAL_WORDS)


def redacted_dump(model: BaseModel) -> Any:
    """`model_dump(mode="json")` with every SECRET field (and SECRET_ENTRIES entry) hashed."""
    data = model.model_dump(mode="json", by_alias=True)
    return _redact(model, data)


def _hidden(value: Any) -> str:
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:8]
    return f"<redacted:{digest}>"


def _redact_entries(value: Any, name: str = "") -> Any:
    if names_credential(name) and value not in (None, [], {}, ""):
        return _hidden(value)
    if isinstance(value, dict):
        return {k: _redact_entries(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_entries(v) for v in value]
    return value


def _redact(model: BaseModel, data: Any) -> Any:
    if not isinstance(data, dict):
        return data
    for name, field in type(model).model_fields.items():
        key = field.alias or name
        if key not in data:
            continue
        value = getattr(model, name)
        extra = field.json_schema_extra
        secret = extra.get("secret") if isinstance(extra, dict) else None
        if secret is True and data[key] not in (None, [], {}, ""):
            data[key] = _hidden(data[key])
        elif secret == "entries":
            data[key] = _redact_entries(data[key])
        elif isinstance(value, BaseModel):
            data[key] = _redact(value, data[key])
        elif isinstance(value, list | tuple) and isinstance(data[key], list):
            data[key] = [
                _redact(v, d) if isinstance(v, BaseModel) else d
                for v, d in zip(value, data[key], strict=False)
            ]
        elif isinstance(value, dict) and isinstance(data[key], dict):
            data[key] = {
                k: _redact(v, data[key][k]) if isinstance(v, BaseModel) else data[key][k]
                for k, v in value.items()
                if k in data[key]
            }
    return data
