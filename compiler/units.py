"""Durations and sizes as they are written in configuration.

Durations use Go's syntax, as Traefik does: `"10s"`, `"500ms"`, `"1m30s"`, `"2h"`; a bare
number is seconds. Sizes take SI and IEC units: `"1MiB"`, `"64KiB"`, `"10MB"`, `"512"`; a bare
number is bytes. Both parse at compile time into plain numbers (float seconds, int bytes), so
the runtime never parses a unit. `Duration` and `Size` are pydantic-ready annotated types that
serialise back to the canonical text, which keeps the IR JSON stable.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]i?[bB]?|[bB])?\s*$")
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1024, "ki": 1024,
    "m": 1000**2, "mb": 1000**2, "mib": 1024**2, "mi": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "gi": 1024**3,
    "t": 1000**4, "tb": 1000**4, "tib": 1024**4, "ti": 1024**4,
}  # fmt: skip


def parse_duration(value: object) -> float:
    """Seconds from `"1m30s"`, `"500ms"`, `10` or `2.5`. Raises ValueError with a readable message."""
    if isinstance(value, bool):
        raise ValueError('expected a duration such as "10s" or "500ms", got a boolean')
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f'expected a duration such as "10s", got {type(value).__name__}')
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(
            f'invalid duration {value!r}: use a number with a unit, e.g. "10s", "500ms", "1m30s"'
        )
    return total


def format_duration(seconds: float) -> str:
    """The canonical text of a duration: the largest exact unit (`"90s"`, `"500ms"`, `"2h"`)."""
    for unit, factor in (("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        count = seconds / factor
        if count >= 1 and abs(count - round(count)) < 1e-9:
            return f"{round(count)}{unit}"
    return "0s" if seconds == 0 else f"{seconds!r}s"


def parse_size(value: object) -> int:
    """Bytes from `"1MiB"`, `"10MB"`, `"64k"` or `4096`."""
    if isinstance(value, bool):
        raise ValueError('expected a size such as "1MiB", got a boolean')
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f'expected a size such as "1MiB", got {type(value).__name__}')
    match = _SIZE.match(value)
    if match is None or (match.group(2) is not None and match.group(2).lower() not in _SIZE_UNITS):
        raise ValueError(f'invalid size {value!r}: use a number with a unit, e.g. "512KiB", "1MiB", "10MB"')
    number = float(match.group(1))
    return int(number * _SIZE_UNITS[(match.group(2) or "").lower()])


def format_size(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


Duration = Annotated[
    float, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]
"""Seconds, written in config as `"10s"`, `"500ms"` or a number of seconds."""

Size = Annotated[int, BeforeValidator(parse_size), PlainSerializer(format_size, return_type=str)]
"""Bytes, written in config as `"1MiB"`, `"64KiB"` or a number of bytes."""
