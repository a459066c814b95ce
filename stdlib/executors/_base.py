"""The executor interface: how a scaled service gets its replicas.

An executor turns "I want N replicas" into running servers and reports which of them are ready.
The autoscaler (stdlib/scalers/kpa.py) decides N; the cold-start buffer holds requests until a
replica is ready; the executor is the only part that knows how replicas are made (local
processes, a Kubernetes Deployment, a webhook, or nothing at all for a fixed list).

Writing one is a declaration in `stdlib/executors/schemas/` and a module in `stdlib/executors/`:

    # schemas/my.py
    class MyConfig(ConfigModel):          # the `my { ... }` block inside `scaling`
        url: str

    declare("executor", "my", config=MyConfig, impl="executors.my", creates_replicas=True)

    # my.py
    @register("executor", "my")
    class MyExecutor(Executor[MyConfig]):
        async def _main(self) -> None:       # the reconcile loop, run by run() (optional)
            while True:
                self._wake = anyio.Event()   # the base scale() records `desired` and sets it
                ...                          # bring replicas towards self.desired
                self.publish(["http://10.0.0.7:8000"])   # whenever the ready set changes
                with anyio.move_on_after(5):
                    await self._wake.wait()

The contract:

* `scale(desired)` records the wish and returns promptly; it is called from the scaler's task,
  never from a request. It may be called again before the previous wish is fulfilled. The base
  version stores `desired` and wakes a loop waiting on `_wake`; override it only to do more.
* `ready_endpoints()` is the current list of URLs that can take requests (cheap, synchronous).
* `publish(urls)` (from the base class) updates that list and notifies `subscribe`rs and
  `wait_changed` callers; call it from your own code whenever the ready set changes.
* `run()` holds the executor's background tasks (by default it runs `_main()`: supervising
  processes, polling an API). The
  owner runs it in its task group; cancelling it must leave nothing behind (a process executor
  stops its processes in a shielded `finally`). `aclose()` stops `run()` and waits for it.
* `drainer`, when the owner sets it, returns once a replica has no request in flight; an
  executor that removes a ready replica first unpublishes it, then awaits the drainer (bounded).
* `creates_replicas`, in the declaration, says whether the executor makes its own replicas (then
  the service needs no `servers` list) or only observes servers configured elsewhere (`static`).

Executors never read the wall clock for decisions; what they time (readiness deadlines, grace
periods) is about the outside world and uses anyio's timers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import anyio

from ..base import BuildContext, ConfigModel

__all__ = ["Executor", "Listener"]

# httpx logs every request at INFO; executors poll (readiness every 100 ms while a model loads,
# endpoints every few seconds), which would flood the gateway's log. Quiet it unless someone
# configured that logger on purpose.
if logging.getLogger("httpx").level == logging.NOTSET:
    logging.getLogger("httpx").setLevel(logging.WARNING)

ConfigT = TypeVar("ConfigT", bound=ConfigModel)
Listener = Callable[[list[str]], None]


class Executor(Generic[ConfigT]):
    """Base class of every executor kind. See the module docstring for the contract."""

    def __init__(self, config: ConfigT, ctx: BuildContext, *, servers: Sequence[str] = ()) -> None:
        self.config = config
        self.ctx = ctx
        # The service's own `servers` (used by executors that observe rather than create).
        self.servers = list(servers)
        self.desired = 0
        self.log = ctx.logger.getChild(f"executor.{ctx.name}") if ctx.name else ctx.logger
        self._ready: list[str] = []
        self._listeners: list[Listener] = []
        self._waiters: list[anyio.Event] = []
        # Set by the owner: returns once a replica taken out of rotation has nothing in flight.
        # Executors that stop replicas themselves await it (bounded) before stopping one.
        self.drainer: Callable[[str], Awaitable[None]] | None = None
        self._run_scope: anyio.CancelScope | None = None
        self._run_done: anyio.Event | None = None
        # Set by a kind's reconcile loop while it waits, so that scale() wakes it at once.
        self._wake: anyio.Event | None = None

    # ------------------------------------------------------------------ to implement

    async def scale(self, desired: int) -> None:
        """Ask for `desired` replicas (returns before they are ready): recorded, and the loop
        of `_main` woken if it waits on `_wake`."""
        self.desired = max(0, desired)
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        """Background work until cancelled: the kind's `_main` (the default has none)."""
        await self._supervise(self._main)

    async def _main(self) -> None:
        await anyio.sleep_forever()

    # ------------------------------------------------------------------ provided

    def ready_endpoints(self) -> list[str]:
        return list(self._ready)

    def publish(self, urls: Sequence[str]) -> None:
        """Set the ready endpoints; listeners and waiters hear about it when it changed."""
        urls = list(dict.fromkeys(urls))
        if urls == self._ready:
            return
        self._ready = urls
        self.log.info("ready replicas: %d %s", len(urls), urls)
        for listener in list(self._listeners):
            try:
                listener(list(urls))
            except Exception:
                self.log.exception("ready-set listener failed")
        waiters, self._waiters = self._waiters, []
        for event in waiters:
            event.set()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(urls)` on every change of the ready set; returns the unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def wait_changed(self) -> list[str]:
        """Wait for the next change of the ready set and return the new set."""
        event = anyio.Event()
        self._waiters.append(event)
        await event.wait()
        return self.ready_endpoints()

    async def _supervise(self, body: Callable[[], Any] | None) -> None:
        """Run `body()` (or sleep) inside a scope that `aclose` can cancel."""
        self._run_done = anyio.Event()
        try:
            with anyio.CancelScope() as scope:
                self._run_scope = scope
                if body is None:
                    await anyio.sleep_forever()
                else:
                    await body()
        finally:
            self._run_scope = None
            self._run_done.set()

    async def aclose(self) -> None:
        """Stop `run()` (its cleanup stops what it started) and wait until it has finished."""
        scope, done = self._run_scope, self._run_done
        if scope is not None and done is not None:
            scope.cancel()
            with anyio.CancelScope(shield=True):
                await done.wait()
        self.publish([])

    def snapshot(self) -> dict[str, Any]:
        return {"desired": self.desired, "ready": self.ready_endpoints()}
