"""The configuration reference (docs/reference.md), generated from the models themselves.

Every block's keys, types and defaults come from the pydantic models of compiler/schema.py, and
every kind's section from its registered config model and its module docstring, so the
reference cannot drift from what `compile --check` accepts. `make docs` rewrites the file and a
test fails when it is stale.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from ..stdlib import registry
from .keys import blocks
from .unavailable import is_unavailable
from .units import format_duration, format_size

_NOT_YET = "**Not available yet**: a value other than the default is a compile error (config.md)."


def _heading(path: str) -> str:
    """A block's heading: its key path with `<name>` for a label (`entrypoints.<name>.tls`)."""
    return path.replace("*", "<name>") or "top-level settings"


_KIND_SECTIONS: list[tuple[registry.Category, str]] = [
    ("middleware", 'Middlewares (`middlewares "<name>" { type = "..." }`)'),
    ("balancer", 'Load-balancing strategies (`load_balancer { strategy = "..." }`)'),
    ("executor", 'Scaling executors (`scaling { executor = "..."; <name> { ... } }`)'),
    ("service", 'Service kinds (`services "<name>" { <kind> { ... } }`)'),
    ("scaler", "Autoscalers"),
    ("provider", "Providers (`providers { <name> { ... } }`, see providers.md)"),
]


def render_reference() -> str:
    out = [
        "# Configuration reference",
        "",
        "Generated from the config models by `make docs` (`compiler/reference.py`); do not edit by hand.",
        'Durations are written `"10s"`, `"500ms"`, `"1m30s"` (a bare number is seconds); sizes',
        '`"1MiB"`, `"64KiB"` (a bare number is bytes). See [config.md](config.md) for the language.',
        "",
        "## Blocks",
        "",
    ]
    first: dict[type[BaseModel], str] = {}  # the path each model was first described at
    for path, model in blocks():
        out += [f"### `{_heading(path)}`", ""]
        if is_unavailable(path):
            out += [
                "**Not available yet**: this block is a compile error (config.md).",
                "",
                *_table(model),
                "",
            ]
        elif model in first:
            out += [f"The keys of `{_heading(first[model])}`.", ""]
        else:
            first[model] = path
            out += [*_table(model, path), ""]
    for category, heading in _KIND_SECTIONS:
        out += [f"## {heading}", ""]
        for kind in registry.kinds(category):
            aliases = f" (alias {', '.join(f'`{a}`' for a in kind.aliases)})" if kind.aliases else ""
            out += [f"### `{kind.name}`{aliases}", ""]
            if kind.doc:
                out += [_first_paragraphs(kind.doc), ""]
            rows = _table(kind.config)
            out += [*(rows if len(rows) > 2 else ["No options."]), ""]
    return "\n".join(out).rstrip() + "\n"


def _table(model: type[BaseModel], path: str | None = None) -> list[str]:
    """The model's keys; with `path`, keys that are not available yet say so."""
    rows = ["| key | type | default | |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if name in ("executor_options", "strategy_options", "kind", "kind_options", "kinds"):
            continue
        key = f"`{name.rstrip('_')}`"
        if field.alias and field.alias != name.rstrip("_"):
            key += f" (or `{field.alias}`)"
        unit = _unit(field.metadata)
        required = field.is_required()
        default = "required" if required else _default(field.default, field.default_factory, unit)
        note = (field.description or "").replace("|", "\\|")
        written = field.alias or name
        if path is not None and is_unavailable(f"{path}.{written}" if path else written):
            note = f"{note} {_NOT_YET}".strip()
        rows.append(f"| {key} | {unit or _type(field.annotation, [])} | {default} | {note} |")
    return rows


def _unit(metadata: list[Any]) -> str | None:
    text = " ".join(repr(m) for m in metadata)
    if "parse_duration" in text:
        return "duration"
    if "parse_size" in text:
        return "size"
    return None


def _default(value: Any, factory: Any, unit: str | None = None) -> str:
    if value is PydanticUndefined and factory is not None:
        value = factory()
    if unit == "duration" and isinstance(value, int | float):
        return f'`"{format_duration(float(value))}"`'
    if unit == "size" and isinstance(value, int):
        return f'`"{format_size(value)}"`'
    if isinstance(value, BaseModel):
        return "(block)"
    if value is None or value == [] or value == {}:
        return "–"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value!r}`".replace("'", '"')


def _type(annotation: Any, metadata: list[Any]) -> str:
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Annotated:
        inner = typing.get_args(annotation)
        validators = " ".join(repr(m) for m in inner[1:])
        if "parse_duration" in validators:
            return "duration"
        if "parse_size" in validators:
            return "size"
        return _type(inner[0], [])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(a, []) for a in args)
    if origin is list:
        return f"list of {_type(args[0], [])}" if args else "list"
    if origin is dict:
        return "map"
    if origin is typing.Literal:
        return " \\| ".join(f'`"{a}"`' for a in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "block"
    return getattr(annotation, "__name__", str(annotation)).replace("NoneType", "null")


def _first_paragraphs(doc: str, count: int = 2) -> str:
    """The first `count` paragraphs; a fenced code block is one paragraph, blank lines and all."""
    paragraphs: list[list[str]] = [[]]
    fenced = False
    for line in doc.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not line.strip() and not fenced:
            paragraphs.append([])
        else:
            paragraphs[-1].append(line)
    texts = ["\n".join(p).strip() for p in paragraphs if any(line.strip() for line in p)]
    return "\n\n".join(texts[:count])


__all__ = ["render_reference"]
