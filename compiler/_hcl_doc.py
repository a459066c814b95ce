"""What the HCL front end yields: literal values, attributes and blocks, each with its span.

Both readers build these: `hcl.py` from python-hcl2's lark tree, `_hcl_fast.py` straight from
the text of the literal subset; the differential property test compares them field by field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .source import Span

__all__ = ["Attribute", "Block", "Document", "Entry", "Item", "Value", "number"]


@dataclass(frozen=True, slots=True)
class Value:
    """A literal value; for a list or an object, `entries` holds its elements with spans."""

    data: Any
    span: Span
    entries: tuple[Entry, ...] = ()


@dataclass(frozen=True, slots=True)
class Entry:
    """A list element (`key` is its index) or an object member (`span` is its key's)."""

    key: str | int
    span: Span
    value: Value


@dataclass(frozen=True, slots=True)
class Attribute:
    name: str
    span: Span
    value: Value


@dataclass(frozen=True, slots=True)
class Block:
    type: str
    labels: tuple[str, ...]
    span: Span
    label_spans: tuple[Span, ...]
    body: tuple[Item, ...]


Item = Attribute | Block


@dataclass(frozen=True, slots=True)
class Document:
    path: str
    body: tuple[Item, ...]


def number(text: str, *, is_int: bool) -> int | float | str:
    """The value of a number literal, or the error message when it is not one."""
    shown = text if len(text) <= 20 else text[:17] + "..."
    if len(text) > 400:  # before int(): Python refuses more than 4,300 digits with a ValueError
        return f"the number {shown} is too large"
    try:
        value = int(text) if is_int else float(text)
    except ValueError:  # python-hcl2's FLOAT_LITERAL also takes a subtraction (`-1-2.5`) as one token
        return f"only literal values are supported: `{shown}` is an operator expression"
    if isinstance(value, float) and not math.isfinite(value):
        return f"the number {shown} is too large"
    return value
