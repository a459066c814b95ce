"""The Gateway: compile, build, serve, reload, drain. And the `run` command around it.

    async with Gateway("gateway.hcl") as gateway:   # start(): compile, build, bind
        ...
        plan = await gateway.reload("gateway.hcl")   # compile, diff, build, swap
    # shutdown(): stop accepting, drain up to drain_timeout, close state

A reload is a diff and one swap. It compiles the new configuration (a compile error raises
`CompileError` and the running graph is untouched), diffs the IR, and then:

1. prepares, changing nothing the running generation uses: builds the new generation (every
   unchanged node gets its live state back from the `StateStore`; changes to shared state are
   registered with the transaction, not applied) and binds the sockets of new addresses
   without accepting on them. Anything that fails here (a port in use, a certificate that does
   not load) aborts: the new objects are closed and nothing else has changed;
2. commits, which cannot fail: the transaction applies the registered changes, the kept
   listeners take their new settings, the new ones start accepting, and one reference is
   swapped.

Listeners hand each request to `dispatch`, which reads that reference once, so a request (and
its response stream) finishes on the generation it started on. The state the new generation no
longer uses is closed once every generation that used it has no request, stream or mirror
shadow in flight, however long that takes; drain_timeout bounds only a shutdown.

The lifecycle (Created, Starting, Running, Reloading, Stopping, Stopped) is the transition table
in `runtime/lifecycle.py`.

A gateway may be given a compiled `IRGraph` instead of paths: a worker of `run --workers N` is
given the graphs its supervisor compiled (runtime/handoff.py), with the supervisor's generation
numbers, and never imports the compiler's pipeline (`compiler.pipeline` loads with the first
compile of files). Nor does it run the providers its graph names: the supervisor that compiled
the graph runs them (runtime/publisher.py), and the worker only reports their status.

This module and `workers.py` are the only places that name an event loop: `run_async` picks
asyncio (with uvloop when installed) or trio; everything else is written on anyio. On asyncio,
start() also picks the loop-native socket stream (asyncio_stream.py) for the listeners and
their upstream connections; on trio they keep netio's readiness-wait stream.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import importlib.util
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from ..compiler import CompileError, IRGraph, render_text
from ..compiler.acme import acme_plan
from ..compiler.collector import collector_paused
from ..compiler.diff import GraphDiff, diff
from ..compiler.fragment import Fragment
from ..compiler.schema import AccessLogConfig, MetricsConfig, Settings, TracingConfig
from .api import SYSTEM_CLOCK, Clock, Handler, Request, Response
from .entrypoints import EntrypointSet, Listener
from .graph import BuildEnv, LiveGraph, UpstreamFactory
from .lifecycle import SERVING, Event, Lifecycle, LifecycleError, State
from .netio import SocketStream, Spawn, StreamFactory, WatchReadable
from .observe import (
    AccessLog,
    GatewayMetrics,
    LiveFeed,
    LiveHub,
    Reading,
    Sampler,
    Tracing,
    prepare_access_log,
    prepare_metrics,
    prepare_tracing,
)
from .observe.acme_series import AcmeCollector
from .observe.kind_events import MetricsRecorder
from .observe.l4_series import L4Collector
from .observe.metric_names import OPEN_CONNECTIONS
from .observe.provider_series import ProviderCollector
from .observe.relay import WorkerRelay, relay_dir
from .observe.state_series import GraphCollector
from .observe.tls_certs import CertInfo, read_certs
from .protocols.http1_choice import HTTP1, default_http1
from .providers import MirroredProviders, ProviderSet, reconciled
from .state import Retired, StateStore, StateTxn

if TYPE_CHECKING:
    from ..compiler.pipeline import LoadedFiles
    from .acme import AcmeManager, HttpTokens
    from .callback_path import DirectSource
    from .handoff import GraphFollower

__all__ = ["Gateway", "LifecycleError", "ReloadAborted", "State", "run_async", "run_command"]

_log = logging.getLogger("a3s_gateway")
Config = IRGraph | str | Sequence[str]


class ReloadAborted(Exception):
    """A reload built and then dropped, at its `confirm`'s word (another worker failed it)."""


@dataclass(frozen=True)
class _Prepared:
    """A generation built beside the running one: `commit` swaps it in, `abort` drops it."""

    graph: LiveGraph
    commit: Callable[[], tuple[Retired, list[Listener]]]
    abort: Callable[[], Awaitable[None]]


class Gateway:
    """A gateway serving one configuration at a time. See the module docstring."""

    def __init__(
        self,
        config: Config,
        *,
        env: Mapping[str, str] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        reuse_port: bool = False,
        upstream: UpstreamFactory | None = None,
        supervisor: int | None = None,
        generation: int = 1,
        reload_all: Callable[[], Awaitable[GraphDiff]] | None = None,
        providers: ProviderSet | None = None,
    ) -> None:
        self._config = config
        # The pid of the supervisor of `run --workers N` when this gateway is one of its workers.
        self._supervisor = supervisor
        # The first generation's number: a worker's is the supervisor's (runtime/handoff.py).
        self._first_generation = generation
        # The admin API's reload when it is not this gateway's alone (a worker's: handoff.py).
        self._reload_all = reload_all
        self._env = env
        self._clock = clock
        self._reuse_port = reuse_port
        self._upstream = upstream
        self._lifecycle = Lifecycle()
        self._lock = anyio.Lock()
        self._store = StateStore()
        self._entrypoints = EntrypointSet(
            self._dispatcher,
            tcp_dispatcher=self._tcp_dispatcher,
            direct_source=self._direct_source,
            reuse_port=reuse_port,
        )
        self._current: LiveGraph | None = None
        # None when the configuration asks for no access log: the request path checks only this.
        self._access_log: AccessLog | None = None
        # The metrics registry (None without a `metrics` block) and the certificates it reports.
        self._metrics: GatewayMetrics | None = None
        self._certs: list[CertInfo] = []
        # Where node kinds report cold starts and rollbacks (to the current registry, if any).
        self._recorder = MetricsRecorder(lambda: self._metrics)
        # The tracing of the current generation (None without a `tracing` block).
        self._tracing: Tracing | None = None
        # Whether dispatch records requests (an access log, metrics or tracing): its one check when not.
        self._observing = False
        # The task group start() entered itself (no task group given), and the one of `async with`.
        self._own_exit: AsyncExitStack | None = None
        self._context_exit: AsyncExitStack | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._owner: int | None = None
        self._stopped: anyio.Event | None = None
        self._scopes: set[anyio.CancelScope] = set()
        # The ACME certificates and their resolvers' tasks (made when a configuration first has a
        # certificate resolver; kept for the gateway's life, so reloads keep issued certificates).
        self._acme: AcmeManager | None = None
        # Earlier generations that may still have requests in flight.
        self._previous: list[LiveGraph] = []
        # The reloads made: one per generation after the first (a worker's generations are its
        # supervisor's, so every worker says the gateway's count, a restarted one too).
        self.reloads = generation - 1
        # The providers' fragments the running graph was compiled with, and the providers
        # themselves (runtime/providers.py; None until a configuration names one).
        self._fragments: dict[str, Fragment] = {}
        # (A worker's are its supervisor's, which it only reports: providers.MirroredProviders.)
        self._providers: ProviderSet | None = providers
        # The files the running graph was compiled from, which a provider's update compiles with
        # (kept only while there are providers; compiler.LoadedFiles says why).
        self._files: LoadedFiles | IRGraph | None = None
        # The live feed (GET /api/gateway/live): state changes, and samples while watched.
        self.live = LiveHub(Sampler(self._live_reading))

    # ----------------------------------------------------------------------- public API

    def state(self) -> State:
        return self._lifecycle.state

    @property
    def graph(self) -> LiveGraph:
        """The generation new requests are routed on."""
        if self._current is None:
            raise LifecycleError(self.state(), Event.RELOAD)
        return self._current

    @property
    def store(self) -> StateStore:
        return self._store

    @property
    def settings(self) -> Settings:
        settings = self.graph.ir.settings
        return settings if isinstance(settings, Settings) else Settings()

    @property
    def metrics(self) -> GatewayMetrics | None:
        """The Prometheus registry this gateway records into (None: no `metrics` block). Read
        current values with `metrics.registry.collect()` or `metrics.value(name, labels)`."""
        return self._metrics

    def addresses(self) -> dict[str, tuple[str, int]]:
        """The address each entrypoint is bound to (the real port when configured as 0)."""
        return {name: listener.address for name, listener in self._entrypoints.listeners.items()}

    def health(self) -> dict[str, Any]:
        state = self.state()
        out: dict[str, Any] = {"status": "ok" if state in SERVING else state.value, "state": state.value}
        if self._current is not None:
            out["generation"] = self._current.generation
            out["in_flight"] = self._current.active
        out["reloads"] = self.reloads
        out["entrypoints"] = {name: lst.statistics() for name, lst in self._entrypoints.listeners.items()}
        if self._acme is not None:
            out["acme"] = self._acme.status()
        if self._providers is not None and (providers := self._providers.health()):
            out["providers"] = providers
        return out

    @property
    def providers(self) -> ProviderSet | None:
        """The running providers (None when the configuration names none)."""
        return self._providers

    async def __aenter__(self) -> Gateway:
        exit_stack = AsyncExitStack()
        task_group = await exit_stack.enter_async_context(anyio.create_task_group())
        try:
            await self.start(task_group)
        except BaseException:
            await exit_stack.aclose()
            raise
        self._context_exit = exit_stack
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self.shutdown()
        finally:
            exit_stack, self._context_exit = self._context_exit, None
            if exit_stack is not None:
                await exit_stack.aclose()

    async def start(self, task_group: anyio.abc.TaskGroup | None = None) -> None:
        """Compile, build the first generation and bind every listener; return once serving.

        The gateway's background tasks (listeners, demo backends, retiring old generations)
        run in `task_group`. Without one, start() enters a task group of its own that
        shutdown() leaves: then call both from the same task, at the same nesting level (not
        from inside a narrower task group or cancel scope). `async with Gateway(...)` and
        `await gateway.start(tg)` have no such constraint: shutdown() may come from any task.
        """
        async with self._lock:
            self._lifecycle.fire(Event.START)
            self._stopped = anyio.Event()
            try:
                if task_group is None:
                    self._owner = anyio.get_current_task().id
                    self._own_exit = AsyncExitStack()
                    task_group = await self._own_exit.enter_async_context(anyio.create_task_group())
                self._tg = task_group
                self.live.attach(self._spawn)
                self._entrypoints.stream_factory, self._entrypoints.spawn = native_io()
                self._entrypoints.watch = native_watch()
                with collector_paused():  # as a reload's (_reload); `run` collects after (settle_heap)
                    ir = await self._first_compile(self._config)
                prepared = await self._build(ir, task_group, generation=self._first_generation)
                prepared.commit()
                self._reconcile_providers()
            except BaseException:
                self._lifecycle.fire(Event.START_FAILED)
                await self._teardown()
                await self._leave()
                raise
            self._lifecycle.fire(Event.STARTED)
            listeners = self._entrypoints.listeners.values()
            _log.info("gateway running: %s", ", ".join(lst.describe() for lst in listeners))

    async def reload(
        self,
        new_config: Config | None = None,
        *,
        fragments: Mapping[str, Fragment] | None = None,
        generation: int | None = None,
        confirm: Callable[[], Awaitable[bool]] | None = None,
    ) -> GraphDiff:
        """Swap in a new configuration (the files, or with `fragments` the providers' fragments
        the files are compiled with); on any error the running graph keeps serving, unchanged.
        `generation`: the new generation's number (a worker's is the supervisor's); it is the
        running one's plus one when not given or not above it. `confirm`: awaited once the new
        generation is built, right before the swap, which happens only if it returns True
        (else `ReloadAborted`, nothing changed): a worker's vote in its supervisor's two-phase
        reload (runtime/twophase.py)."""
        async with self._lock:
            self._lifecycle.fire(Event.RELOAD)
            # A provider's update compiles with the files the running graph was compiled from.
            files = self._files if fragments is not None and new_config is None else None
            fragments = self._fragments if fragments is None else dict(fragments)
            try:
                with collector_paused():  # reading the files too: one pause, one collection (_reload)
                    if files is None:  # the files (again), from disk
                        files = await self._load(self._config if new_config is None else new_config)
                    plan, prepared = await self._prepare_reload(files, fragments, generation)
                if confirm is not None:  # outside the pause: it waits for the other workers
                    await self._confirm(prepared, confirm)
                self._swap(prepared)
            except BaseException as exc:
                self._lifecycle.fire(Event.RELOAD_FAILED)
                _log.error("reload rejected, the running configuration keeps serving: %s", exc)
                self.reload_rejected(exc)
                raise
            self._lifecycle.fire(Event.RELOADED)
            # A worker may skip generations (brought to the newest at its join): it says its
            # supervisor's count, which is the number of generations after the first.
            self.reloads = self.graph.generation - 1 if self._supervisor is not None else self.reloads + 1
            if self._metrics is not None and self._supervisor is None:  # else the supervisor counts
                self._metrics.reloaded(success=True)
            if new_config is not None:
                self._config = new_config
            self._fragments = fragments
            self._reconcile_providers()
            self._files = files if self._providers is not None else None
            _log.info("reloaded (generation %d): %s", self.graph.generation, plan.summary())
            self._publish_reload("reloaded", plan)
            # A watcher's stream was routed on the old generation and keeps it busy: it ends
            # here, so the old generation can retire, and its client reconnects through the new
            # routers and middlewares (EventSource does by itself).
            self.live.end_all("reload")
            return plan

    def reload_rejected(self, exc: BaseException) -> None:
        """Count and publish a reload that failed, here or (a worker's admin API reload) in the
        supervisor that compiled it for this gateway. A worker counts no reload: its supervisor
        counts each one once, for all the workers (runtime/publisher.py)."""
        if self._metrics is not None and self._supervisor is None:
            self._metrics.reloaded(success=False)
        if isinstance(exc, Exception):
            self._publish_reload("rejected" if isinstance(exc, CompileError) else "failed", error=exc)

    def _publish_reload(
        self, result: str, plan: GraphDiff | None = None, error: BaseException | None = None
    ) -> None:
        data: dict[str, Any] = {
            "result": result,
            "generation": self.graph.generation,
            "reloads": self.reloads,
        }
        if plan is not None:
            data["changes"] = {"added": plan.added, "changed": plan.changed, "removed": plan.removed}
        if error is not None:
            data["error"] = str(error).splitlines()[0] if str(error) else type(error).__name__
        self.live.publish("reload", data)

    async def reload_all(self) -> GraphDiff:
        """The admin API's reload: this gateway's, exactly as SIGHUP does. In a worker of `run
        --workers N`, the supervisor's instead: it compiles once and hands the graph to every
        worker, this one included (runtime/handoff.py, GraphFollower.reload_all); a rejected
        configuration raises the supervisor's CompileError and no worker reloads."""
        if self._reload_all is not None:
            if self.state() is not State.RUNNING:  # as reload() says it (409), before asking
                raise LifecycleError(self.state(), Event.RELOAD)
            return await self._reload_all()
        return await self.reload()

    async def shutdown(self) -> None:
        """Stop accepting, drain in-flight requests up to drain_timeout, close state. Idempotent."""
        async with self._lock:
            if self.state() is State.RUNNING:
                self._lifecycle.fire(Event.SHUTDOWN)
                self.live.end_all("shutdown")  # before the drain, which would wait for them
                try:
                    await self._drain()
                finally:
                    await self._teardown()
                    self._lifecycle.fire(Event.STOPPED)
            elif self.state() is State.CREATED:
                self._lifecycle.fire(Event.SHUTDOWN)
        await self._leave()

    async def wait_stopped(self) -> None:
        if self._stopped is not None:
            await self._stopped.wait()

    # ----------------------------------------------------------------------- internals

    async def _load(self, config: Config) -> LoadedFiles | IRGraph:
        if isinstance(config, IRGraph):
            return config
        # The pipeline loads with the first compile: a gateway given compiled graphs never does.
        from ..compiler.pipeline import load_files

        paths = [config] if isinstance(config, str) else list(config)
        # Reading and compiling are pure CPU work (tens of ms): a thread keeps the event loop serving.
        return await anyio.to_thread.run_sync(load_files, paths, self._env)

    async def _compile(self, files: LoadedFiles | IRGraph, fragments: Mapping[str, Fragment]) -> IRGraph:
        if isinstance(files, IRGraph):
            return files
        from ..compiler.pipeline import compile_loaded

        chosen = [fragments[name] for name in sorted(fragments)]
        result = await anyio.to_thread.run_sync(compile_loaded, files, chosen)
        if result.graph is None:
            raise CompileError(result.diagnostics, result.sources)
        return result.graph

    def _build_env(self, metrics: GatewayMetrics | None = None) -> BuildEnv:
        assert self._tg is not None
        return BuildEnv(
            self._tg,
            self._clock,
            dict(self._env or {}),
            _log,
            admin=self,
            metrics=metrics,
            recorder=self._recorder,
            publish=self.live.publish,
        )

    async def _build(self, ir: IRGraph, tg: anyio.abc.TaskGroup, *, generation: int) -> _Prepared:
        """Build the generation `ir` asks for beside the running one: nothing here changes what
        the running generation uses, and a failure closes what was built and raises. Returns its
        commit, which cannot fail: it swaps the new generation in and returns what the old one
        no longer shares (kept state, listeners) for retiring; and its abort, which closes what
        was built (the new sockets, the state the transaction created) and changes nothing."""
        txn = self._store.begin()
        try:
            metrics, certs = await self._prepare_metrics(ir, txn)
            env = self._build_env(metrics)
            graph = await LiveGraph.build(ir, txn, env, generation=generation, upstream=self._upstream)
            access_log = await prepare_access_log(_access_log_setting(ir), txn, self._spawn)
            tracing = await prepare_tracing(_tracing_setting(ir), txn)
            plans = acme_plan(ir)
            # A first resolver's manager is made here and kept only at commit (a failed reload
            # leaves no ACME state behind: no `acme` in the health API, no HTTP-01 tokens).
            acme = (self._acme or self._new_acme_manager()) if plans else None
            change = await self._entrypoints.prepare(tg, ir, acme.table if acme is not None else None)
        except BaseException:
            await txn.abort()
            raise

        def commit() -> tuple[Retired, list[Listener]]:
            retired = txn.commit()
            retiring = self._entrypoints.commit(change)
            self._current = graph  # the swap
            self._set_observers(access_log, metrics, certs, tracing)
            if acme is not None:
                self._acme = acme
            if self._acme is not None:
                assert self._tg is not None
                self._acme.apply(plans, self._tg)
            return retired, retiring

        async def abort() -> None:
            await self._entrypoints.abort(change)
            await txn.abort()

        return _Prepared(graph, commit, abort)

    async def _prepare_metrics(
        self, ir: IRGraph, txn: StateTxn
    ) -> tuple[GatewayMetrics | None, list[CertInfo]]:
        """The registry the new configuration asks for (kept across reloads, see
        observe/metrics.py) and the certificates it reports (read in a thread)."""
        metrics = prepare_metrics(_metrics_setting(ir), txn, self._setup_metrics)
        certs = await anyio.to_thread.run_sync(read_certs, ir) if metrics is not None else []
        return metrics, certs

    def _setup_metrics(self, metrics: GatewayMetrics) -> None:
        metrics.add_collector(GraphCollector(lambda: self._current, lambda: self._certs))
        metrics.add_collector(L4Collector(lambda: self._entrypoints.listeners, lambda: self._current))
        metrics.add_collector(AcmeCollector(lambda: self._acme))
        metrics.add_collector(ProviderCollector(lambda: self._providers))

    def _set_observers(
        self,
        access_log: AccessLog | None,
        metrics: GatewayMetrics | None,
        certs: list[CertInfo],
        tracing: Tracing | None,
    ) -> None:
        """Part of a commit: what dispatch records into from now on."""
        self._access_log, self._metrics, self._certs, self._tracing = access_log, metrics, certs, tracing
        self._observing = access_log is not None or metrics is not None or tracing is not None
        gauge = metrics.metric(OPEN_CONNECTIONS) if metrics is not None else None
        for name, listener in self._entrypoints.listeners.items():
            count = getattr(listener.server, "count_connections", None)
            if count is not None:
                count(gauge.labels(name, "TCP") if gauge is not None else None)
        if metrics is not None:
            metrics.loaded()

    def _new_acme_manager(self) -> AcmeManager:
        from .acme import AcmeManager

        return AcmeManager(workers=self._supervisor is not None)

    def acme_tokens(self) -> HttpTokens | None:
        """The HTTP-01 answers acme-http@internal serves (None before any resolver is configured)."""
        return self._acme.tokens if self._acme is not None else None

    def live_feed(self, events: frozenset[str] | None = None) -> LiveFeed:
        """A new watcher of the live feed (the admin API's `GET /api/gateway/live`)."""
        return self.live.subscribe(events)

    def _live_reading(self) -> Reading:
        # The admin API's modules load once a feed is watched (a sample a second, only then),
        # not in every worker that never serves the API.
        from .admin.live import live_reading

        metrics = self._metrics
        return live_reading(self.graph, self.health(), metrics.registry if metrics is not None else None)

    def _dispatcher(self, listener: Listener) -> Handler:
        def dispatch(request: Request) -> Awaitable[Response]:
            # One read of the reference pins the generation for the whole exchange; the
            # listener's name is read per request too, as a reload may rename the entrypoint
            # that owns its socket. A plain function returning the coroutine: no frame of its
            # own on the request path (and with observers on, one frame serves and observes).
            graph = self._current
            assert graph is not None
            if not self._observing:
                return graph.serve(listener.name, request)
            return graph.serve_observed(listener.name, request, self._access_log, self._tracing)

        return dispatch

    def _direct_source(self, listener: Listener) -> DirectSource:
        """What the callback path (callback_path.py) reads per request on `listener`'s
        connections: the current generation, the listener's entrypoint name (a reload may
        rename it), the access log, and whether tracing is on (then it hands over)."""

        def current() -> tuple[LiveGraph, str, AccessLog | None, bool]:
            graph = self._current
            assert graph is not None
            return graph, listener.name, self._access_log, self._tracing is not None

        return current

    def _tcp_dispatcher(self, listener: Listener) -> Callable[[], tuple[LiveGraph, str]]:
        """What a TCP connection routes on: the current generation (which it then holds until
        it closes) and the name of the entrypoint that owns its socket now."""

        def current() -> tuple[LiveGraph, str]:
            graph = self._current
            assert graph is not None
            return graph, listener.name

        return current

    def reopen_access_log(self) -> None:
        """Reopen the access log file (SIGUSR1: logrotate has renamed it)."""
        if self._access_log is not None:
            self._access_log.writer.reopen()

    async def _first_compile(self, config: Config) -> IRGraph:
        """The first graph: the files with what their providers give at start (runtime/providers.py).

        The providers start before it, and it waits for each one's first answer (at most
        FIRST_ANSWER seconds), so that a file may reference a provider's object. When the
        fragments do not compile with the files, the files start alone and each fragment is
        tried once the gateway serves, rejected alone if it does not compile."""
        files = await self._load(config)
        if isinstance(files, IRGraph):
            return files
        settings, _ = files.settings()
        providers = settings.providers if settings is not None else None
        if providers is None or not providers.kinds:
            return await self._compile(files, {})
        self._files = files
        self._providers = self._new_provider_set()

        async def attempt(fragments: Mapping[str, Fragment]) -> IRGraph | CompileError:
            try:
                return await self._compile(files, fragments)
            except CompileError as exc:
                return exc

        ir, first = await self._providers.first_compile(
            providers, attempt, lambda result: isinstance(result, CompileError)
        )
        if isinstance(ir, CompileError):  # the files' own errors
            raise ir
        self._fragments = first
        self._providers.started_with(first)
        return ir

    def _new_provider_set(self) -> ProviderSet:
        return ProviderSet(
            lambda fragments: self.reload(fragments=fragments), self._spawn, dict(self._env or os.environ)
        )

    def _reconcile_providers(self) -> None:
        """Run the providers the running configuration names (runtime/providers.py). A gateway
        given a compiled graph runs none: whoever compiled it ran them (a worker's supervisor,
        runtime/publisher.py), and its updates could not be compiled here anyway."""
        config = None if isinstance(self._config, IRGraph) else self.settings.providers
        self._providers = reconciled(self._providers, config, self._new_provider_set)

    async def _prepare_reload(
        self, files: LoadedFiles | IRGraph, fragments: Mapping[str, Fragment], generation: int | None = None
    ) -> tuple[GraphDiff, _Prepared]:
        # The compile and the new generation's build allocate what a new graph holds and much
        # that is freed at once: the collector waits for them (compiler/collector.py) and then
        # runs once, whatever the outcome, with the parser's memory released (settle_heap).
        with collector_paused():
            try:
                ir = await self._compile(files, fragments)
                old = self.graph
                plan = diff(old.ir, ir)
                assert self._tg is not None
                number = max(generation or 0, old.generation + 1)
                prepared = await self._build(ir, self._tg, generation=number)
            finally:
                # Still paused: collected after, the collector's first automatic pass would walk
                # everything the compile and the build made once more, as soon as it is back.
                release_compile_memory(young=True)
        return plan, prepared

    @staticmethod
    async def _confirm(prepared: _Prepared, confirm: Callable[[], Awaitable[bool]]) -> None:
        """Swap only if `confirm()` says so; else (or when it raises) drop what was built. Only
        the reload holds the lock meanwhile: the running generation serves, and nothing else
        changes what the prepared one was built against."""
        try:
            go = await confirm()
        except BaseException:
            await prepared.abort()
            raise
        if not go:
            await prepared.abort()
            raise ReloadAborted(
                f"generation {prepared.graph.generation} was aborted: not every worker could load it"
            )

    def _swap(self, prepared: _Prepared) -> None:
        old = self.graph
        retired, retiring = prepared.commit()  # nothing awaits from here to the swap
        for listener in retiring:
            self._spawn(self._entrypoints.retire, listener)
        self._previous.append(old)
        self._spawn(self._retire, old, retired)

    async def _retire(self, old: LiveGraph, retired: Retired) -> None:
        """Close the state `old` used and its successor does not, once it is no longer in use.

        Every earlier generation may still use that state too (a stream to a backend that
        `old` inherited), so all of them must have drained, not just `old`. There is no
        deadline: a stream keeps what it uses until it ends (a shutdown cancels this wait,
        which closes the state all the same).
        """
        try:
            for graph in [g for g in self._previous if g.generation <= old.generation]:
                await graph.wait_idle()
        finally:
            self._previous = [g for g in self._previous if g.active > 0 or g.generation > old.generation]
            await retired.aclose()

    async def _wait_idle(self) -> None:
        """Until no generation, current or earlier, has a request, stream or shadow in flight."""
        for graph in [*self._previous, self.graph]:
            await graph.wait_idle()

    async def _drain(self) -> None:
        self._entrypoints.stop_accepting()
        timeout = self.settings.drain_timeout
        active = sum(g.active for g in [*self._previous, self.graph])
        _log.info("draining %d in-flight requests (up to %gs)", active, timeout)
        await self._entrypoints.drain(timeout, also=self._wait_idle)

    def _spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run a background task in its own cancel scope, cancelled by teardown.

        Teardown cancels these scopes, never the task group's own: the task that entered the
        task group in start() runs inside its scope, and a shutdown() from another task must
        not cancel whatever that task is doing.
        """
        assert self._tg is not None
        self._tg.start_soon(self._scoped, fn, args)

    async def _scoped(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        with anyio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                await fn(*args)
            finally:
                self._scopes.discard(scope)

    async def _teardown(self) -> None:
        """Cancel every task of the gateway and close all state (shielded)."""
        self._entrypoints.cancel()
        if self._acme is not None:
            self._acme.stop()
        for scope in list(self._scopes):
            scope.cancel()
        await self._store.aclose()
        if self._stopped is not None:
            self._stopped.set()

    async def _leave(self) -> None:
        """Exit the task group start() entered itself, when called from the task that entered it."""
        if self._own_exit is not None and anyio.get_current_task().id == self._owner:
            exit_stack, self._own_exit = self._own_exit, None
            await exit_stack.aclose()


def _metrics_setting(ir: IRGraph) -> MetricsConfig | None:
    settings = ir.settings
    return settings.metrics if isinstance(settings, Settings) else None


def _tracing_setting(ir: IRGraph) -> TracingConfig | None:
    settings = ir.settings
    return settings.tracing if isinstance(settings, Settings) else None


def _access_log_setting(ir: IRGraph) -> bool | AccessLogConfig:
    settings = ir.settings
    return settings.access_log if isinstance(settings, Settings) else False


# --------------------------------------------------------------------------- the `run` command


def native_io() -> tuple[StreamFactory, Spawn | None]:
    """The socket stream and connection-task spawner for the running loop: asyncio's
    transports and plain tasks on asyncio/uvloop (asyncio_stream.py), anyio's on trio."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # trio (or any loop that is not asyncio's)
        return SocketStream, None
    from .asyncio_stream import AsyncioSocketStream, spawn_task

    return AsyncioSocketStream, spawn_task


def native_watch() -> WatchReadable | None:
    """A reader that stays registered with the running loop (asyncio's `add_reader`), or None
    on trio, whose readers wait with `anyio.wait_readable` in a task."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return None
    from .asyncio_stream import watch_readable

    return watch_readable


def run_async(fn: Callable[[], Awaitable[Any]], backend: str = "asyncio") -> int:
    """Run `fn` on the chosen event loop: asyncio (uvloop when installed) or trio."""
    if backend == "trio":
        result = anyio.run(fn, backend="trio")
    else:
        options = {"use_uvloop": True} if importlib.util.find_spec("uvloop") is not None else {}
        result = anyio.run(fn, backend="asyncio", backend_options=options)
    return result if isinstance(result, int) else 0


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run_command(args: argparse.Namespace) -> int:
    """`a3s-gateway run --config PATH... [--watch] [--workers N|auto] [--backend asyncio|trio]
    [--http1 h11|fast]`."""
    from ..compiler.pipeline import compile_config, load_settings

    paths = list(args.config)
    result = compile_config(paths)
    settings = result.graph.settings if result.graph is not None else None
    if result.graph is None:
        # The files may reference what their providers give (`service = "api@etcd"`): then only
        # the gateway's first compile, with the providers' first fragments, can tell (it reports).
        from .publisher import has_dynamic_providers

        settings, _, _ = load_settings(paths)
        if settings is None or not has_dynamic_providers(settings):
            print(render_text(result.diagnostics, result.sources, color=sys.stderr.isatty()), file=sys.stderr)
            return 1
    elif len(result.diagnostics):
        print(render_text(result.diagnostics, result.sources, color=sys.stderr.isatty()), file=sys.stderr)
    configure_logging(str(getattr(args, "log_level", None) or getattr(settings, "log_level", "info")))
    try:
        workers = parse_workers(str(getattr(args, "workers", "1") or "1"))
    except ValueError as exc:
        print(f"a3s-gateway run: {exc}", file=sys.stderr)
        return 2
    backend = getattr(args, "backend", None) or "asyncio"
    watch = bool(getattr(args, "watch", False))
    http1 = getattr(args, "http1", None) or default_http1()
    try:
        HTTP1.use(http1)
    except ImportError:
        print("a3s-gateway run: --http1 fast needs httptools (pip install httptools)", file=sys.stderr)
        return 2
    if workers > 1:
        from ..compiler.schema import Settings
        from .publisher import handed_to_workers, has_dynamic_providers
        from .workers import supervise

        # Generation 1 for every worker: this graph, or with dynamic providers the files compiled
        # by the supervisor with their first fragments (none here: supervise runs them).
        assert isinstance(settings, Settings)  # compiled, or settings with dynamic providers (above)
        first = (
            []
            if result.graph is None or has_dynamic_providers(settings)
            else [handed_to_workers(paths, result.graph)]
        )  # supervise empties it
        del result
        release_compile_memory()  # the supervisor compiles again at each reload
        return supervise(
            paths, workers, first, backend=backend, watch=watch, log_level=args.log_level, http1=http1
        )
    return run_async(lambda: serve_until_signalled(paths, watch=watch), backend)


def settle_heap() -> None:
    """Hide what start-up allocated from the cyclic garbage collector (`gc.freeze`).

    The compiled graph, the imported modules and their constants are some 10^5 objects that
    live as long as the process; without this every full collection, triggered by the
    allocations requests make, walks all of them again. What start-up leaves behind as cyclic
    garbage is collected first; objects created later (requests, reloaded graphs) are
    collected as usual.

    Before that, the memory only compiling needed goes back to the system: the HCL parser's
    tables (loaded again by a reload's compile) and the C heap left free around them
    (`malloc_trim`, glibc). Together some 10 MiB of an idle process's RSS.
    """
    release_compile_memory()
    gc.freeze()


def release_compile_memory(*, young: bool = False) -> None:
    """Drop the HCL parser, collect, and return the C heap's free pages to the system (glibc's
    `malloc_trim`; elsewhere only the parser goes).

    `young`: collect the young generations only, where everything made since the collector was
    paused is (a reload's compile and build: compiler/collector.py). The old generation holds
    the graphs already serving (some 10^5 objects per 10,000 routers) and is left to the
    collector's own full passes: walking it again on every reload found nothing of the
    compile's to free."""
    hcl = sys.modules.get("a3s_gateway.compiler.hcl")
    if hcl is not None:  # a process that compiled (a worker given compiled graphs never did)
        hcl.release_parser()
    gc.collect(1 if young else 2)
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    import ctypes

    try:  # the symbols the process has loaded: the C library's among them
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None
    return trim


def parse_workers(text: str) -> int:
    import os

    if text == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"--workers takes a positive number or 'auto', not {text!r}")
    return int(text)


async def serve_until_signalled(
    paths: Sequence[str],
    *,
    watch: bool = False,
    reuse_port: bool = False,
    supervisor: int | None = None,
    worker: int = 0,
    follower: GraphFollower | None = None,
) -> int:
    """Serve `paths` until SIGTERM/SIGINT; SIGHUP (and, with `watch`, a file change) reloads.
    `supervisor`: the pid of the `run --workers N` supervisor when this process is a worker
    (`worker` its index), which then serves the graphs the supervisor publishes (`follower`,
    runtime/handoff.py) instead of compiling `paths`, and reloads when the supervisor says so,
    not on SIGHUP."""
    reload: Callable[[], Awaitable[Any]] | None = None
    if follower is None:
        gateway = Gateway(list(paths), reuse_port=reuse_port, supervisor=supervisor)
        reload = functools.partial(reload_logged, lambda: gateway.reload(list(paths)))
    else:
        first = follower.take_first()
        gateway = Gateway(
            first.graph,
            reuse_port=reuse_port,
            supervisor=supervisor,
            generation=first.generation,
            reload_all=lambda: follower.reload_all(gateway),
            providers=MirroredProviders(follower.providers),
        )

        del first  # the gateway holds the graph it serves, and lets it go at its next reload

    async with AsyncExitStack() as relaying:
        if supervisor is not None and (shared := relay_dir()) is not None:
            await _relay_live_feed(gateway, WorkerRelay(shared, worker), relaying)
        return await _serve(gateway, paths, reload, watch, follower=follower)


async def _relay_live_feed(gateway: Gateway, relay: WorkerRelay, stack: AsyncExitStack) -> None:
    """The other workers' state changes into this one's live feed, and this one's into theirs."""
    try:
        await relay.open()
    except OSError as exc:  # a path too long for a Unix socket, say: the feed is this worker's only
        _log.warning("live feed: no relay between the workers: %s", exc)
        return
    stack.push_async_callback(relay.aclose)
    gateway.live.relay_to(relay.send, relay.worker)
    tg = await stack.enter_async_context(anyio.create_task_group())
    stack.callback(tg.cancel_scope.cancel)
    tg.start_soon(relay.run, gateway.live.deliver)


async def _serve(
    gateway: Gateway,
    paths: Sequence[str],
    reload: Callable[[], Awaitable[Any]] | None,
    watch: bool,
    *,
    follower: GraphFollower | None = None,
) -> int:
    """`reload`: SIGHUP's (None in a worker, whose `follower` loads its supervisor's reloads)."""
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        # Signals are ours before the (slow) start: a SIGTERM then still means a clean exit.
        await tg.start(_handle_signals, gateway, paths, reload, stop)
        try:
            await gateway.start(tg)
        except Exception as exc:  # a port in use, a certificate that does not load...
            if isinstance(exc, CompileError):
                print(render_text(exc.diagnostics, exc.sources), file=sys.stderr)
            else:
                _log.error("cannot start: %s", exc)
            tg.cancel_scope.cancel()
            return 1
        settle_heap()
        # A worker inherits SIGHUP and SIGUSR1 blocked (workers.held_signals): serving now, it
        # takes those that arrived during its start-up (SIGUSR1 reopens its access log).
        signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGHUP, signal.SIGUSR1))
        if follower is not None:  # serving: it takes part in its supervisor's reloads
            tg.start_soon(follower.run, gateway, stop)
        if watch and reload is not None:
            from .watch import extra_paths, watch_config

            def provided() -> list[str]:  # the file provider's paths, as the running graph names them
                return extra_paths(paths, gateway.graph.ir.settings)

            tg.start_soon(functools.partial(watch_config, paths, reload, provided, stop=stop))
        await stop.wait()
        await gateway.shutdown()
        tg.cancel_scope.cancel()
    _log.info("gateway stopped")
    return 0


async def _handle_signals(
    gateway: Gateway,
    paths: Sequence[str],
    reload: Callable[[], Awaitable[Any]] | None,
    stop: anyio.Event,
    *,
    task_status: anyio.abc.TaskStatus[None],
) -> None:
    """Serve the signals. `reload` is None in a worker of `run --workers N`, which reloads only
    when its supervisor says so, all the workers or none (runtime/twophase.py): a SIGHUP that
    reaches it (a terminal's hangup, sent to the whole process group) reaches the supervisor
    too, which reloads them all."""
    with anyio.open_signal_receiver(signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1) as signals:
        task_status.started()
        async for signum in signals:
            if signum == signal.SIGUSR1:
                # logrotate renamed the access log: the next flush opens the path afresh.
                await anyio.to_thread.run_sync(gateway.reopen_access_log)
                _log.info("SIGUSR1: the access log is reopened")
            elif signum != signal.SIGHUP:
                # Repeats are expected (Ctrl-C reaches workers and their supervisor) and ignored.
                if not stop.is_set():
                    _log.info("%s: shutting down gracefully", signal.Signals(signum).name)
                stop.set()
            elif reload is None:
                _log.info("SIGHUP: a worker reloads when its supervisor (pid %d) says so", os.getppid())
            elif gateway.state() is State.RUNNING:
                _log.info("SIGHUP: reloading %s", ", ".join(paths))
                await reload()


async def reload_logged(reload: Callable[[], Awaitable[GraphDiff]]) -> GraphDiff | None:
    """Reload, logging a rejected configuration's diagnostics instead of raising."""
    try:
        return await reload()
    except CompileError as exc:
        _log.error("configuration rejected:\n%s", render_text(exc.diagnostics, exc.sources))
    except LifecycleError as exc:
        _log.warning("reload skipped: %s", exc)
    except Exception as exc:
        _log.error("reload failed: %s", exc)
    return None
