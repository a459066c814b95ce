"""The base of every configuration model: frozen, and strict about unknown keys.

Shared by the compiler's top-level schema and by every node kind's config in stdlib/, so a
misspelt key anywhere is a compile-time error with a "did you mean" hint.
"""

from __future__ import annotations

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
        for name, field in cls.model_fields.items():
            key = field.alias if field.alias in data else name
            value = data.get(key)
            if isinstance(value, dict) and typing.get_origin(_strip_optional(field.annotation)) is list:
                fixed = fixed if fixed is not None else dict(data)
                fixed[key] = [value]
        return fixed if fixed is not None else data


def _strip_optional(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation
