"""The registry of node kinds: middlewares, balancers, health checks, executors, providers.

A kind is what it declares and what it runs. The declaration, in `stdlib/<category>/schemas/`,
is its config model and its names; it imports pydantic, the compiler's model helpers and what its
validators need, never anyio or httpx:

    # stdlib/middlewares/schemas/rate_limit.py
    class RateLimitConfig(LimitOptions): ...
    declare("middleware", "rate-limit", config=RateLimitConfig, impl="middlewares.rate_limit")

The implementation, `stdlib/<category>/<kind>.py`, holds the kind's docstring (its reference
doc) and the class, registered by its type name:

    @register("middleware", "rate-limit")
    class RateLimit(MiddlewareKind[RateLimitConfig]): ...

The compiler needs only declarations: `names` and `lookup(...).config` import the schema modules
and nothing else, so `compile --check` never loads anyio, httpx or a kind's own libraries. The
runtime asks for `lookup(...).impl`, which imports the implementation module the first time.
Categories the compiler never validates (health, scaler, service) have no schemas package: their
implementations register with their config (`@register("health", "http", config=...)`).
Nothing anywhere switches over kind names, so adding a kind touches its two modules and its
test only.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, TypeVar

from pydantic import BaseModel

Category = Literal[
    "middleware", "balancer", "health", "executor", "provider", "scaler", "service", "dns_provider"
]
CATEGORIES: tuple[Category, ...] = (
    "middleware",
    "balancer",
    "health",
    "executor",
    "provider",
    "scaler",
    "service",
    "dns_provider",
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
    "dns_provider": "resolvers",  # the DNS-01 providers of ACME certificate resolvers
}
_BASE = __name__.rsplit(".", 1)[0]  # a3s_gateway.stdlib

T = TypeVar("T", bound=type)


@dataclass(frozen=True, slots=True)
class Kind:
    """A node kind: its category, type name, config model and (imported on first use) its class.

    `protocols` (middlewares: the router protocols it applies to) and `creates_replicas`
    (executors: whether it makes its own replicas) are said here only, in the declaration, so
    the compiler's checks need no implementation.
    """

    category: Category
    name: str
    config: type[BaseModel]
    module: str  # the implementation module, e.g. "a3s_gateway.stdlib.middlewares.rate_limit"
    aliases: tuple[str, ...] = ()
    protocols: frozenset[str] = frozenset({"http"})
    creates_replicas: bool = False

    @property
    def impl(self) -> type:
        """The kind's class, importing its module the first time."""
        cls = _IMPLS.get((self.category, self.name))
        if cls is None:
            importlib.import_module(self.module)
            cls = _IMPLS.get((self.category, self.name))
            if cls is None:
                raise RuntimeError(f"{self.module} does not register {self.category} kind {self.name!r}")
        return cls

    @property
    def doc(self) -> str:
        """The kind's reference documentation: its implementation module's docstring."""
        return (importlib.import_module(self.module).__doc__ or "").strip()


_KINDS: dict[tuple[Category, str], Kind] = {}
_IMPLS: dict[tuple[Category, str], type] = {}


def declare(
    category: Category,
    name: str,
    *,
    config: type[BaseModel],
    impl: str,
    aliases: tuple[str, ...] = (),
    protocols: frozenset[str] = frozenset({"http"}),
    creates_replicas: bool = False,
) -> None:
    """Declare kind `name` of `category`: its config model, and where its implementation is
    (`impl`, a module path under the stdlib package, e.g. "middlewares.rate_limit")."""
    _add(Kind(category, name, config, f"{_BASE}.{impl}", aliases, protocols, creates_replicas))


def register(category: Category, name: str, *, config: type[BaseModel] | None = None) -> Callable[[T], T]:
    """Class decorator: `cls` implements kind `name` of `category`.

    A declared kind (middleware, balancer, executor) is registered by name only: its config,
    aliases, protocols and creates_replicas are said once, in its declaration. A kind of a
    category without declarations (health, scaler, service) gives its `config` here.
    """

    def decorate(cls: T) -> T:
        if config is not None:
            _add(Kind(category, name, config, cls.__module__))
        else:
            declared = lookup(category, name)
            if declared is None or declared.module != cls.__module__:
                where = declared.module if declared else "no declaration"
                raise RuntimeError(
                    f"{cls.__module__} registers {category} kind {name!r}, declared for {where}"
                )
        _IMPLS[(category, name)] = cls
        return cls

    return decorate


def _add(kind: Kind) -> None:
    for key in (kind.name, *kind.aliases):
        existing = _KINDS.get((kind.category, key))
        if existing is not None and existing.module != kind.module:
            raise RuntimeError(
                f"{kind.category} kind {key!r} declared twice ({existing.module} and {kind.module})"
            )
        _KINDS[(kind.category, key)] = kind


def lookup(category: Category, name: str) -> Kind | None:
    _load_declarations(category)
    return _KINDS.get((category, name))


def names(category: Category) -> list[str]:
    """Every name (aliases included) declared for `category`, sorted."""
    _load_declarations(category)
    return sorted(key for (cat, key) in _KINDS if cat == category)


def kinds(category: Category | None = None) -> list[Kind]:
    """Every kind (once each, aliases folded), optionally of one category; imports them all."""
    load_builtin_kinds()
    unique = {id(k): k for (cat, _), k in _KINDS.items() if category is None or cat == category}
    return sorted(unique.values(), key=lambda k: (k.category, k.name))


_declared: set[Category] = set()


def _load_declarations(category: Category) -> None:
    """Import the category's schema modules, or, without a schemas package, its implementations."""
    if category in _declared:
        return
    _declared.add(category)
    package = f"{_BASE}.{_PACKAGES[category]}"
    try:
        schemas = importlib.import_module(f"{package}.schemas")
    except ModuleNotFoundError as exc:
        if exc.name != f"{package}.schemas":
            raise
        _import_all(package)
    else:
        _import_all(schemas.__name__, schemas.__path__)


def _import_all(package: str, path: Iterable[str] | None = None) -> None:
    for info in pkgutil.iter_modules(path or importlib.import_module(package).__path__):
        if not info.name.startswith("_") and info.name != "schemas":
            importlib.import_module(f"{package}.{info.name}")


_loaded = False


def load_builtin_kinds() -> None:
    """Import every declaration and every implementation of the stdlib kinds once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for category, package in _PACKAGES.items():
        _load_declarations(category)
        _import_all(f"{_BASE}.{package}")
