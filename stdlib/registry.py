"""The registry of node kinds: middlewares, balancers, health checks, executors, providers.

A kind is one module in `stdlib/<category>/` that registers its class with `@register`:

    @register("middleware", "rate-limit", config=RateLimitConfig)
    class RateLimit(MiddlewareKind[RateLimitConfig]): ...

The compiler looks up a kind's config model here to validate configuration; the runtime looks
up its class to build it. Nothing anywhere switches over kind names, so adding a kind touches
its own module and its test only.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from pydantic import BaseModel

Category = Literal["middleware", "balancer", "health", "executor", "provider", "scaler", "service"]
CATEGORIES: tuple[Category, ...] = (
    "middleware",
    "balancer",
    "health",
    "executor",
    "provider",
    "scaler",
    "service",
)
# Which stdlib sub-package holds each category's modules.
_PACKAGES: dict[Category, str] = {
    "middleware": "middlewares",
    "balancer": "balancers",
    "health": "health",
    "executor": "executors",
    "provider": "providers",
    "scaler": "scalers",
    "service": "services",
}

T = TypeVar("T", bound=type)


@dataclass(frozen=True, slots=True)
class Kind:
    """A registered node kind: its category, type name, config model and implementation."""

    category: Category
    name: str
    config: type[BaseModel]
    impl: type
    aliases: tuple[str, ...] = ()

    @property
    def doc(self) -> str:
        """The kind's reference documentation: its module docstring."""
        module = sys.modules.get(self.impl.__module__)
        return (module.__doc__ or "").strip() if module else ""


_KINDS: dict[tuple[Category, str], Kind] = {}


def register(
    category: Category, name: str, *, config: type[BaseModel], aliases: tuple[str, ...] = ()
) -> Callable[[T], T]:
    """Class decorator: register `cls` as kind `name` of `category`, configured by `config`."""

    def decorate(cls: T) -> T:
        kind = Kind(category, name, config, cls, aliases)
        for key in (name, *aliases):
            existing = _KINDS.get((category, key))
            if existing is not None and existing.impl is not cls:
                raise RuntimeError(f"{category} kind {key!r} registered twice ({existing.impl} and {cls})")
            _KINDS[(category, key)] = kind
        return cls

    return decorate


def lookup(category: Category, name: str) -> Kind | None:
    load_builtin_kinds()
    return _KINDS.get((category, name))


def names(category: Category) -> list[str]:
    """Every name (aliases included) registered for `category`, sorted."""
    load_builtin_kinds()
    return sorted(key for (cat, key) in _KINDS if cat == category)


def kinds(category: Category | None = None) -> list[Kind]:
    """Every registered kind (once each, aliases folded), optionally of one category."""
    load_builtin_kinds()
    unique = {id(k): k for (cat, _), k in _KINDS.items() if category is None or cat == category}
    return sorted(unique.values(), key=lambda k: (k.category, k.name))


_loaded = False


def load_builtin_kinds() -> None:
    """Import every module of the stdlib category packages once, so their kinds register."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    base = __name__.rsplit(".", 1)[0]
    for package in _PACKAGES.values():
        pkg = importlib.import_module(f"{base}.{package}")
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{base}.{package}.{info.name}")
