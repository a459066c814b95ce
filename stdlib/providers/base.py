"""The provider interface: a kind that watches a source and yields configuration fragments.

Writing one is a declaration in `stdlib/providers/schemas/` and a module in `stdlib/providers/`
(docs/providers.md, "Writing a provider"):

    # schemas/consul.py
    class ConsulConfig(ConfigModel):        # the `consul { ... }` block inside `providers`
        endpoints: list[str]

    declare("provider", "consul", config=ConsulConfig, impl="providers.consul")

    # consul.py
    @register("provider", "consul")
    class Consul(ProviderKind[ConsulConfig]):
        async def run(self, updates: Updates) -> None:
            await keep_watching(updates, self._watch, log=self.log)

        async def _watch(self, updates: Updates) -> None:   # returns or raises: the source is lost
            async with connect(...) as source:
                while True:
                    await updates.publish(Fragment("consul", tree, origins))
                    await source.wait_for_a_change()

The contract:

* `run(updates)` runs until cancelled. Each `updates.publish(fragment)` hands over the
  provider's whole configuration as it now is (not a delta): routers, services and middlewares
  in the files' shape, with unqualified names (the gateway qualifies them `name@consul`), and
  per key path a short origin (`key a3s/http/routers/api/rule`) that diagnostics name.
* A source that cannot be reached or stops answering is `updates.lost(reason, retry_in)`: the
  gateway keeps serving the last fragment it accepted and says so (log, health, metrics).
  `keep_watching` does the retrying with exponential backoff for you.
* What the provider cannot read (a value that is not UTF-8, a key outside its layout) goes in the
  fragment's `problems`; the gateway rejects that fragment with a diagnostic at its origin and
  keeps the last good one. Never raise for bad input.
* Throttling, merging, compiling and reloading are the gateway's (runtime/providers.py): publish
  as often as the source changes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, NoReturn, Protocol, TypeVar

import anyio

from ...compiler.fragment import Fragment
from ..base import BuildContext, ConfigModel

__all__ = [
    "Backoff",
    "BuildContext",
    "Fragment",
    "ProviderKind",
    "SourceLost",
    "Updates",
    "keep_watching",
    "try_each",
]

ConfigT = TypeVar("ConfigT", bound=ConfigModel)

# httpx logs every request at INFO: a provider's watch would flood the gateway's log.
if logging.getLogger("httpx").level == logging.NOTSET:
    logging.getLogger("httpx").setLevel(logging.WARNING)


class Updates(Protocol):
    """Where a provider sends what it finds (runtime/providers.py implements it)."""

    async def publish(self, fragment: Fragment) -> None:
        """The provider's whole configuration as it now is."""

    def lost(self, reason: str, retry_in: float) -> None:
        """The source is unreachable; the provider retries in `retry_in` seconds."""


class SourceLost(Exception):
    """Raised inside a watch when the source answered something that ends it (a compacted
    revision, a closed stream): `keep_watching` retries as for a connection error."""


class ProviderKind(Generic[ConfigT]):
    """Base class of every provider kind. See the module docstring for the contract."""

    def __init__(self, config: ConfigT, ctx: BuildContext) -> None:
        self.config = config
        self.ctx = ctx
        self.name = ctx.name
        self.log = ctx.logger.getChild(f"provider.{ctx.name}")

    async def run(self, updates: Updates) -> None:
        raise NotImplementedError


class Backoff:
    """Exponential backoff: `initial`, doubled after each failure up to `maximum`; `reset()`
    after a success. Delays are a pure function of the failures counted (no clock)."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.delay = initial

    def next(self) -> float:
        delay = self.delay
        self.delay = min(self.delay * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self.delay = self.initial


class _Counting:
    """The updates of one attempt, counting what it published (a publish resets the backoff)."""

    def __init__(self, inner: Updates) -> None:
        self.inner = inner
        self.published = 0

    async def publish(self, fragment: Fragment) -> None:
        self.published += 1
        await self.inner.publish(fragment)

    def lost(self, reason: str, retry_in: float) -> None:
        self.inner.lost(reason, retry_in)


async def keep_watching(
    updates: Updates,
    attempt: Callable[[Updates], Awaitable[None]],
    *,
    log: logging.Logger,
    backoff: Backoff | None = None,
) -> None:
    """Run `attempt(updates)` forever: each time it returns or fails, the source is reported
    lost and tried again after the backoff (reset once an attempt has published)."""
    backoff = backoff or Backoff()
    while True:
        counting = _Counting(updates)
        try:
            await attempt(counting)
            reason = "the source ended the watch"
        except Exception as exc:  # a connection error, or the source's answer ended the watch
            reason = describe(exc)
        if counting.published:
            backoff.reset()
        delay = backoff.next()
        log.warning(
            "source lost (%s); the last good configuration keeps serving; retry in %gs", reason, delay
        )
        updates.lost(reason, delay)
        await anyio.sleep(delay)


async def try_each(
    endpoints: Sequence[str], watch: Callable[[str], Awaitable[None]], errors: tuple[type[Exception], ...]
) -> NoReturn:
    """`watch(endpoint)` for each endpoint in turn, the next when one fails with one of `errors`
    (or ends); then the source is lost, with every endpoint's reason."""
    failures = []
    caught: tuple[type[Exception], ...] = (*errors, SourceLost)
    for endpoint in endpoints:
        try:
            await watch(endpoint)
            failures.append(f"{endpoint}: the watch ended")
        except caught as exc:
            failures.append(f"{endpoint}: {describe(exc)}")
    raise SourceLost("; ".join(failures))


def describe(exc: BaseException) -> str:
    """A one-line reason for a log and the health endpoint, never a traceback."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
