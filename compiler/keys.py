"""The configuration's blocks as key paths, walked from the schema's models.

A key path is written as compiler/unavailable.py writes it: dotted, `*` for a block's label,
list elements implicit (`services.*.load_balancer.servers`), aliases as users write them, and ""
for the top-level settings. docs/reference.md (reference.py) has a section for each block, and
tests/compiler/test_config_keys.py checks every key, so neither keeps a list of its own.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel

from . import schema

__all__ = ["TOP_LEVEL", "blocks"]

# Each top-level block and its model. Middlewares are not here: a middleware's keys are those of
# its kind's model (stdlib/middlewares/schemas/).
TOP_LEVEL: dict[str, type[BaseModel]] = {
    "entrypoints.*": schema.EntrypointConfig,
    "routers.*": schema.RouterConfig,
    "tcp_routers.*": schema.TcpRouterConfig,
    "udp_routers.*": schema.UdpRouterConfig,
    "services.*": schema.ServiceConfig,
    "api": schema.ApiConfig,
    "": schema.Settings,
}


def blocks() -> list[tuple[str, type[BaseModel]]]:
    """Every block of the schema with its key path, depth first from TOP_LEVEL, in field order.

    A model met at several paths (`servers` of a load balancer and of a revision) is listed at
    each of them."""
    found: list[tuple[str, type[BaseModel]]] = []

    def walk(path: str, model: type[BaseModel]) -> None:
        found.append((path, model))
        for name, field in model.model_fields.items():
            key = f"{path}.{field.alias or name}" if path else field.alias or name
            if typing.get_origin(field.annotation) is dict and _models(field.annotation):
                key += ".*"  # labeled blocks kept in a setting (`certificate_resolvers "le" { }`)
            for sub in _models(field.annotation):
                walk(key, sub)

    for path, model in TOP_LEVEL.items():
        walk(path, model)
    return found


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation holds: itself, or inside a union, a list or `Annotated`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    return []
