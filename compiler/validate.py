"""Pydantic validation with diagnostics at file:line:col.

Each block is validated on its own so one bad block never hides the errors of another, and every
pydantic error is mapped back through the span map to the key it is about, with a "did you mean"
hint for misspelt keys.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from .diagnostics import Diagnostics, did_you_mean

if TYPE_CHECKING:  # merge.py reads the files: a running gateway does not load it
    from .merge import SpanMap

M = TypeVar("M", bound=BaseModel)
Path = tuple[str | int, ...]


def validate_block(
    model: type[M], data: Any, path: Path, spans: SpanMap, diags: Diagnostics, *, what: str
) -> M | None:
    """Validate `data` (found at `path`) as `model`; report every error and return None on failure."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        report_validation_error(exc, model, data, path, spans, diags, what=what)
        return None


def report_validation_error(
    exc: ValidationError,
    model: type[BaseModel],
    data: Any,
    path: Path,
    spans: SpanMap,
    diags: Diagnostics,
    *,
    what: str,
) -> None:

    for error in exc.errors(include_url=False):
        loc = _untagged(model, tuple(error["loc"]), data)
        if loc is None:
            continue
        full = path + loc
        span = spans.find(full)
        key = ".".join(str(p) for p in loc) or what
        kind = error["type"]
        if kind == "extra_forbidden" and loc:
            allowed = allowed_keys(model, loc[:-1])
            hint = did_you_mean(str(loc[-1]), allowed)
            if hint is None and allowed:
                hint = "allowed keys: " + ", ".join(sorted(allowed))
            diags.error(f"unknown key '{loc[-1]}' in {what}", span, hint=hint)
        elif kind == "missing":
            diags.error(f"{what} is missing required key '{key}'", spans.find(path + loc[:-1]) or span)
        elif not loc:
            diags.error(f"{what}: {_message(error)}", span)
        else:
            diags.error(f"{what}: {key}: {_message(error)}", span)


def _message(error: Mapping[str, Any]) -> str:
    text = str(error["msg"])
    # pydantic prefixes custom validator messages with "Value error, "; users don't need that.
    for prefix in ("Value error, ", "Assertion failed, "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text


def allowed_keys(model: type[BaseModel], loc: Sequence[str | int]) -> set[str]:
    """The keys accepted at `loc` inside `model` (field names and aliases), for hints."""
    target: Any = model
    for part in loc:
        target = _step(target, part)
        if target is None:
            return set()
    if not (isinstance(target, type) and issubclass(target, BaseModel)):
        return set()
    keys: set[str] = set()
    for name, field in target.model_fields.items():
        keys.add(field.alias or name)
        if field.alias:
            keys.add(name)
    return keys


def _untagged(model: type[BaseModel], loc: Path, data: Any) -> Path | None:
    """`loc` without the member names pydantic puts after a union field (`access_log.AccessLogConfig
    .filters` for `access_log: bool | AccessLogConfig`), or None for an error of a member the
    configuration did not write: a block is read by the union's model, other values by the rest."""
    out: list[str | int] = []
    annotation: Any = model
    value = data
    for part in loc:
        members = _members(annotation)
        member = next((m for m in members if getattr(m, "__name__", None) == part), None)
        if member is not None:
            block = isinstance(value, Mapping)
            if _is_model(member) != block and any(_is_model(m) == block for m in members):
                return None
            annotation = member
            continue
        out.append(part)
        annotation = _field(annotation, part)
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
            value = value[part]
        else:
            value = None
    return tuple(out)


def _members(annotation: Any) -> list[Any]:
    """The members (None aside, `Annotated` stripped) of a union of several; [] for anything else."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return []
    members = [_strip_annotated(a) for a in typing.get_args(annotation) if a is not type(None)]
    return members if len(members) > 1 else []


def _field(annotation: Any, part: str | int) -> Any:
    """The annotation one location element down, keeping a union of several members whole."""
    inner = _unwrap(annotation)
    if _is_model(inner) and isinstance(part, str):
        for name, field in inner.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
        return None
    return _step(annotation, part)


def _strip_annotated(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _step(annotation: Any, part: str | int) -> Any:
    """Follow one location element through a (possibly generic) annotation."""
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if isinstance(part, int):
            return None
        for name, field in annotation.model_fields.items():
            if part in (name, field.alias):
                return _unwrap(field.annotation)
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (list, tuple) and args:
        return _unwrap(args[0])
    if origin is dict and len(args) == 2:
        return _unwrap(args[1])
    return None


def _unwrap(annotation: Any) -> Any:
    # Optional[X] / X | None / Annotated[X, ...] -> X (the first model-like member).
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                inner = _unwrap(arg)
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    return inner
        return None
    return annotation
