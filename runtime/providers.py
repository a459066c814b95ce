"""The gateway side of the providers: run them, merge their fragments, reload, keep the good ones.

Each provider kind configured in `providers { ... }` (stdlib/providers/) runs as a task that
publishes fragments (compiler/fragment.py). `ProviderSet` keeps, per provider, the last fragment
that compiled (`accepted`) and turns changes into reloads of the gateway, which compiles the
files with the accepted fragments and swaps in the result (the same diff and swap as a file
reload, runtime/gateway.py):

- **Throttle.** A change is applied at once; changes arriving within `providers { throttle }`
  after a reload wait for its end and are applied together, one reload (Traefik's
  providersThrottleDuration). Only a provider's latest fragment counts.
- **Rejected alone.** When the pending fragments together do not compile, each is tried on its
  own over the accepted set: those that compile are accepted, the others rejected. A rejected
  provider keeps serving its last accepted fragment; the diagnostics (which name the provider and
  the key or object, compiler/fragment.py) go to the log, to `/api/gateway/health` and to
  `a3s_gateway_provider_last_error_timestamp_seconds`.
- **Lost source.** A provider that cannot reach its source says so (`lost`); its last accepted
  fragment keeps serving while it retries with backoff (stdlib/providers/base.py).

The set of providers follows the configuration: after each reload `reconcile` starts providers
that appeared, restarts those whose block changed and stops (and drops the fragments of) those
removed. Providers and the apply loop run as the gateway's background tasks, cancelled with the
others at shutdown (Gateway._teardown).

With `run --workers N` the set runs in the supervisor (runtime/publisher.py), which writes its
status to a file on every change (`on_status`); each worker's `MirroredProviders` reads it, so
`/api/gateway/health` and the metrics say in every worker what the one set in the supervisor does.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.abc

from ..compiler import CompileError, render_text
from ..compiler.fragment import Fragment
from ..compiler.schema import ProvidersConfig
from ..stdlib import registry
from ..stdlib.base import BuildContext
from .atomic_file import replacing

__all__ = ["FIRST_ANSWER", "MirroredProviders", "ProviderSet", "ProviderStatus", "reconciled", "write_status"]

T = TypeVar("T")


def reconciled(
    providers: ProviderSet | None, config: ProvidersConfig | None, make: Callable[[], ProviderSet]
) -> ProviderSet | None:
    """The providers a new generation's `config` names, started, restarted or stopped
    (`reconcile`): `providers`, or a new set from `make()` when there is none yet and `config`
    names some; None when there is none and none is named (a gateway's and a supervisor's)."""
    if providers is None and (config is None or not config.kinds):
        return None
    providers = providers or make()
    providers.reconcile(config)
    return providers


_log = logging.getLogger("a3s_gateway.providers")
# How long a start waits for each provider's first answer (a fragment, or its source lost).
FIRST_ANSWER = 10.0
# Fragments -> None; raises CompileError (or another error) when they do not make a graph.
Apply = Callable[[dict[str, Fragment]], Awaitable[Any]]


@dataclass
class ProviderStatus:
    """What `/api/gateway/health` says of one provider."""

    state: str = "starting"  # starting | ok | lost | rejected
    routers: int = 0  # in the accepted fragment
    last_error: str | None = None
    last_error_at: float | None = None  # wall clock, for the metric and the health endpoint
    retry_in: float | None = None
    updates: int = 0  # fragments published
    accepted: int = 0  # of which accepted

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class _Running:
    options: Mapping[str, Any]
    scope: anyio.CancelScope


class ProviderSet:
    """The providers of one gateway (see the module docstring)."""

    def __init__(
        self,
        apply: Apply,
        spawn: Callable[..., None],
        env: Mapping[str, str],
        on_status: Callable[[], None] | None = None,
    ) -> None:
        self._apply = apply
        # Called after the status of a provider may have changed (the supervisor's, to share it).
        self._on_status = on_status or (lambda: None)
        self._spawn = spawn
        self._env = env
        self.accepted: dict[str, Fragment] = {}
        self.status: dict[str, ProviderStatus] = {}
        self._running: dict[str, _Running] = {}
        self._pending: dict[str, Fragment | None] = {}
        self._changed = anyio.Event()
        self._throttle = 2.0
        self._loop_started = False

    # ------------------------------------------------------------------ configuration

    def reconcile(self, config: ProvidersConfig | None, *, apply: bool = True) -> None:
        """Run exactly the providers `config` names, each with its current options; with
        `apply`, turn their changes into reloads (at start, not until the gateway serves)."""
        kinds: Mapping[str, Any] = config.kinds if config is not None else {}
        self._throttle = config.throttle if config is not None else 2.0
        for name in [n for n in self._running if n not in kinds or kinds[n] != self._running[n].options]:
            self._running.pop(name).scope.cancel()
            if name not in kinds:
                self.status.pop(name, None)
                if name in self.accepted:
                    self._queue(name, None)
        for name, options in kinds.items():
            if name not in self._running:
                self._start(name, options)
        if apply and self._running and not self._loop_started:
            self._loop_started = True
            self._spawn(self._apply_loop)
        self._on_status()

    def _start(self, name: str, options: Mapping[str, Any]) -> None:
        kind = registry.lookup("provider", name)
        assert kind is not None  # the compiler validated the block against the registry
        config = kind.config.model_validate(options)
        ctx = BuildContext(node_id=f"provider:{name}", name=name, env=self._env, logger=_log)
        provider = kind.impl(config, ctx)
        scope = anyio.CancelScope()
        self._running[name] = _Running(options, scope)
        self.status.setdefault(name, ProviderStatus())
        self._spawn(self._run, name, provider, scope)

    async def _run(self, name: str, provider: Any, scope: anyio.CancelScope) -> None:
        with scope:
            try:
                await provider.run(_Updates(self, name))
            except Exception as exc:  # a provider's bug: say so, keep the gateway and its fragment
                _log.exception("provider %s stopped", name)
                self._error(name, f"the provider stopped: {exc}", state="lost")

    async def wait_first(self, timeout: float) -> dict[str, Fragment]:
        """At start: until every provider has published or lost its source (at most `timeout`
        seconds); the fragments published, taken out of the pending ones."""
        with anyio.move_on_after(timeout):
            while any(s.updates == 0 and s.state == "starting" for s in self.status.values()):
                await anyio.sleep(0.02)
        first = {n: f for n, f in self._pending.items() if f is not None}
        self._pending.clear()
        return first

    async def first_compile(
        self,
        config: ProvidersConfig | None,
        compile: Callable[[Mapping[str, Fragment]], Awaitable[T]],
        rejected: Callable[[T], bool],
    ) -> tuple[T, dict[str, Fragment]]:
        """Generation 1, a single gateway's and a supervisor's alike: the providers `config`
        names start (their changes are not applied yet), and once each has answered (at most
        FIRST_ANSWER seconds) the files are compiled with their fragments (`compile`), so that
        a file may reference a provider's object. When that is `rejected`, the files are
        compiled alone, and each fragment is tried once the gateway serves, rejected alone if it
        does not compile. The result, and the fragments it was compiled with (to report with
        `started_with` once they are served)."""
        self.reconcile(config, apply=False)
        first = await self.wait_first(FIRST_ANSWER)
        result = await compile(first)
        if first and rejected(result):
            self.retry_after_start(first)
            return await compile({}), {}
        return result, first

    def started_with(self, fragments: Mapping[str, Fragment]) -> None:
        """The gateway started serving these fragments."""
        for name, fragment in fragments.items():
            self._accepted(name, fragment)

    def retry_after_start(self, fragments: Mapping[str, Fragment]) -> None:
        """These did not compile together at start: each is tried once the gateway serves, and
        rejected alone if it does not compile (unless the provider has published since)."""
        for name, fragment in fragments.items():
            self._pending.setdefault(name, fragment)
        self._changed.set()

    # ------------------------------------------------------------------ updates

    def _queue(self, name: str, fragment: Fragment | None) -> None:
        self._pending[name] = fragment
        self._changed.set()

    def lost(self, name: str, reason: str, retry_in: float) -> None:
        self._error(name, f"source lost: {reason}", state="lost", retry_in=retry_in)

    def _error(self, name: str, message: str, *, state: str, retry_in: float | None = None) -> None:
        status = self.status.setdefault(name, ProviderStatus())
        status.state, status.last_error, status.retry_in = state, message, retry_in
        status.last_error_at = time.time()
        self._on_status()

    async def _apply_loop(self) -> None:
        while True:
            await self._changed.wait()
            self._changed = anyio.Event()
            pending, self._pending = self._pending, {}
            await self._settle(pending)
            await anyio.sleep(self._throttle)

    async def _settle(self, pending: dict[str, Fragment | None]) -> None:
        changed = {n: f for n, f in pending.items() if n not in self.accepted or self.accepted[n] != f}
        for name, fragment in pending.items():
            if name not in changed:  # the same again (a source back after an outage): nothing to reload
                self._accepted(name, fragment)
        if not changed:
            return
        error = await self._try({**self.accepted, **changed})
        if error is None:
            for name, fragment in changed.items():
                self._accepted(name, fragment)
        elif len(changed) == 1:
            self._rejected(next(iter(changed)), error)
        else:  # together they fail: each on its own over what is accepted
            for name, fragment in changed.items():
                error = await self._try({**self.accepted, name: fragment})
                if error is None:
                    self._accepted(name, fragment)
                else:
                    self._rejected(name, error)

    async def _try(self, fragments: Mapping[str, Fragment | None]) -> BaseException | None:
        try:
            await self._apply({n: f for n, f in fragments.items() if f is not None})
        except Exception as exc:
            return exc
        return None

    def _accepted(self, name: str, fragment: Fragment | None) -> None:
        if fragment is None:
            self.accepted.pop(name, None)
            return
        self.accepted[name] = fragment
        status = self.status.setdefault(name, ProviderStatus())
        status.state, status.routers, status.retry_in = "ok", fragment.routers(), None
        status.accepted += 1
        self._on_status()

    def _rejected(self, name: str, error: BaseException | None) -> None:
        if isinstance(error, CompileError):
            mine = [
                d for d in error.diagnostics if d.span is not None and d.span.file.startswith(f"{name}: ")
            ]
            text = render_text(mine or list(error.diagnostics), error.sources)
        else:
            text = str(error) or type(error).__name__
        kept = (
            "its last good configuration keeps serving" if name in self.accepted else "it serves nothing yet"
        )
        _log.error("provider %s: configuration rejected, %s:\n%s", name, kept, text)
        self._error(name, text, state="rejected")

    def health(self) -> dict[str, Any]:
        return {name: status.to_json() for name, status in sorted(self.status.items())}

    def last_errors(self) -> list[tuple[str, float]]:
        """(provider, wall time of its last error), for the metric."""
        return [(n, s.last_error_at) for n, s in sorted(self.status.items()) if s.last_error_at is not None]


class _Updates:
    """What one provider's `run` sends its fragments and lost sources to."""

    def __init__(self, owner: ProviderSet, name: str) -> None:
        self._owner = owner
        self._name = name

    async def publish(self, fragment: Fragment) -> None:
        if fragment.provider != self._name:  # the name the gateway qualifies with is the kind's
            fragment = Fragment(self._name, fragment.tree, fragment.origins, fragment.problems)
        self._owner.status.setdefault(self._name, ProviderStatus()).updates += 1
        self._owner._on_status()
        self._owner._queue(self._name, fragment)

    def lost(self, reason: str, retry_in: float) -> None:
        self._owner.lost(self._name, reason, retry_in)


class MirroredProviders(ProviderSet):
    """A worker's view of the providers its supervisor runs: it runs none, and its status is the
    supervisor's, read from the file the supervisor rewrites on every change (`write_status`)
    whenever it is asked for (the health endpoint, a metrics scrape)."""

    def __init__(self, path: str) -> None:
        super().__init__(_runs_nothing, lambda *_: None, {})
        self._path = path
        self._read: tuple[int, int, int] | None = None  # the file last read (inode, mtime, size)

    def reconcile(self, config: ProvidersConfig | None, *, apply: bool = True) -> None:
        """Nothing to run: the supervisor runs the providers."""

    def health(self) -> dict[str, Any]:
        self._refresh()
        return super().health()

    def last_errors(self) -> list[tuple[str, float]]:
        self._refresh()
        return super().last_errors()

    def _refresh(self) -> None:
        try:
            stat = os.stat(self._path)
            changed: tuple[int, int, int] | None = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if changed == self._read:
                return
            with open(self._path, encoding="utf-8") as fh:
                saved = json.load(fh)
            self.status = {name: ProviderStatus(**fields) for name, fields in saved.items()}
        except (OSError, ValueError, TypeError):  # not written yet, or by another version: none
            self.status, changed = {}, None
        self._read = changed


async def _runs_nothing(fragments: dict[str, Fragment]) -> None:
    raise AssertionError("a mirror applies no fragment")


def write_status(path: str, providers: ProviderSet) -> None:
    """Write `providers`' status to `path` (0600, atomically) for the workers' MirroredProviders."""
    with replacing(path) as fh:
        fh.write(json.dumps(providers.health()).encode())
