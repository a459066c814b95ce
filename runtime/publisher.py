"""The supervisor's half of `run --workers N` reloads: compile once, roll out, answer the workers.

`GraphPublisher.reload()` is what SIGHUP, `--watch` and a worker's admin API reload all come to
(runtime/workers.py). It compiles the files in a thread (the supervisor keeps reaping and
restarting workers meanwhile), and then:

- **rejected**: the diagnostics are logged once, in the format `run` prints them, no file is
  written and no worker hears of it: every worker keeps serving its graph, unchanged;
- **compiled**: the graph is written as a candidate (runtime/handoff.py) and every worker
  loads it, or none does (`_roll_out`, a two-phase transaction: runtime/twophase.py). Loaded,
  it is the next generation, which a worker started later starts from; not loaded (a worker
  could not build it), the failure is logged once, naming the worker and its error, and the
  candidate is deleted.

Either way the reload is counted once here (`_count`), not by the workers.

The control socket (`control.sock` in the run directory) carries both conversations with the
workers: each worker's connection for the transactions, which it opens once it serves (`join`),
and a worker's `POST /api/gateway/reload`, which needs the outcome, diagnostics included, to
answer 422, 500 or 200 (`reload`): the supervisor answers with the pickled `Outcome` once the
workers have loaded the new generation, or dropped it.

**Dynamic providers** (`providers { etcd {...} }`, runtime/providers.py) run here too, once for
all the workers, exactly as in a single gateway: their first fragments are awaited before
generation 1 is compiled (`start_with_providers`), and each later change is compiled with the
files of the newest generation (`LoadedFiles`: not the files as they are on disk now) and
published like a reload (`apply_fragments`, which the providers' throttle calls). A fragment
that does not compile is rejected by the providers' set, which logs it once and keeps its last
accepted one; a provider whose source is lost publishes nothing, so the newest generation keeps
serving. A reload of the files compiles them with the fragments of the newest generation and
then starts, restarts or stops the providers as the new settings name them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from ..compiler.diagnostics import CompileError, Diagnostics, render_text
from ..compiler.source import SourceFile
from .handoff import GRAPHS, PROVIDERS, Published, commit_graph, prune_graphs, publish_graph
from .twophase import MAX_LINE, Member, Members, decode, encode

if TYPE_CHECKING:
    from ..compiler.fragment import Fragment
    from ..compiler.ir import IRGraph
    from ..compiler.pipeline import LoadedFiles
    from ..compiler.schema import Settings
    from .providers import ProviderSet

__all__ = [
    "CONTROL",
    "Accepted",
    "Compiled",
    "Failed",
    "GraphPublisher",
    "Outcome",
    "Rejected",
    "ask_for_reload",
    "compile_for_workers",
    "compile_with",
    "handed_to_workers",
    "has_dynamic_providers",
]

_log = logging.getLogger("a3s_gateway.workers")
# The control socket's name in the run directory.
CONTROL = "control.sock"
# A worker waits this long for the supervisor's answer (a 10,000-router compile takes ~1 s).
ANSWER_TIMEOUT = 120.0


@dataclass(frozen=True)
class Accepted:
    generation: int


@dataclass(frozen=True)
class Rejected:
    diagnostics: Diagnostics
    sources: dict[str, SourceFile]

    def error(self) -> CompileError:
        return CompileError(self.diagnostics, self.sources)


@dataclass(frozen=True)
class Failed:
    message: str


Outcome = Accepted | Rejected | Failed


@dataclass(frozen=True)
class Compiled:
    graph: IRGraph
    # What `--watch` watches besides the command line's files (runtime/watch.py).
    provided: list[str] = field(default_factory=list)
    # Whether the settings have a `metrics` block: a rejected reload is counted then.
    metrics: bool = False
    # The files the graph was compiled from (None from `run`'s own compile): kept while there
    # are providers, whose updates are compiled with them (compiler.LoadedFiles says why).
    files: LoadedFiles | None = None


def compile_for_workers(paths: Sequence[str], fragments: Mapping[str, Fragment]) -> Compiled | Rejected:
    """The files, read from disk, compiled with `fragments` for the workers (in a thread: pure
    CPU work)."""
    from ..compiler.pipeline import load_files

    return compile_with(load_files(paths), paths, fragments)


def compile_with(
    files: LoadedFiles, paths: Sequence[str], fragments: Mapping[str, Fragment]
) -> Compiled | Rejected:
    """`files` (loaded from `paths`) compiled with the providers' `fragments` (in a thread)."""
    from ..compiler.pipeline import compile_loaded

    result = compile_loaded(files, [fragments[name] for name in sorted(fragments)])
    if result.graph is None:
        return Rejected(result.diagnostics, result.sources)
    return handed_to_workers(paths, result.graph, files)


def has_dynamic_providers(settings: Settings) -> bool:
    """Whether `settings` name a provider besides `file` (whose files the compiler reads)."""
    return settings.providers is not None and bool(settings.providers.kinds)


def handed_to_workers(paths: Sequence[str], graph: IRGraph, files: LoadedFiles | None = None) -> Compiled:
    """`graph`, compiled from `paths`, as the workers are handed it (at start by `run`, at a
    reload by `compile_with`). Its settings are the graph's, not the files' as written: the
    compiler adds some (a dashboard brings a metrics block), which the workers serve with."""
    from ..compiler.schema import Settings
    from .watch import extra_paths

    settings = graph.settings
    assert isinstance(settings, Settings)
    return Compiled(graph, extra_paths(paths, settings), settings.metrics is not None, files)


class GraphPublisher:
    """The generations of one supervisor, published in its run directory, and the providers
    they are compiled with (see module docstring)."""

    def __init__(self, run_dir: str, paths: Sequence[str]) -> None:
        self.paths = list(paths)
        self.directory = os.path.join(run_dir, GRAPHS)
        os.makedirs(self.directory, 0o700, exist_ok=True)
        self.control = os.path.join(run_dir, CONTROL)
        self.status = os.path.join(run_dir, PROVIDERS)
        self.generation = 0
        self.newest: str | None = None
        self.provided: list[str] = []
        self.metrics = False
        # The providers (None until a configuration names one), the fragments the newest
        # generation was compiled with, and its files while there are providers.
        self.providers: ProviderSet | None = None
        self.fragments: dict[str, Fragment] = {}
        self.files: LoadedFiles | None = None
        self._reloads: Any = None  # the reloads' counter, made at the first one
        # One compile and one transaction with the workers at a time (generations in order);
        # a worker's join waits for the transaction in progress (runtime/twophase.py).
        self._lock = anyio.Lock()
        # The joined workers, which every reload is a transaction with.
        self.members = Members()
        # Why the workers cannot be reached (no control socket), which fails every reload.
        self._unreachable: str | None = None
        # Where the providers run, and how a worker that cannot serve the newest generation is
        # stopped (to be restarted from it) (`attach`).
        self._spawn: Callable[..., None] | None = None
        self._stop_worker: Callable[[int], None] = lambda pid: None

    def attach(self, spawn: Callable[..., None], stop_worker: Callable[[int], None]) -> None:
        """The supervisor's task spawner (the providers' tasks) and its way to stop a worker."""
        self._spawn, self._stop_worker = spawn, stop_worker

    def publish(self, compiled: Compiled, fragments: Mapping[str, Fragment] | None = None) -> str:
        """Publish `compiled` as the next generation, with no worker to ask (generation 1,
        before any starts); the path of its file."""
        self.newest = publish_graph(self.directory, Published(self.generation + 1, compiled.graph))
        self._published(compiled, fragments or {})
        return self.newest

    async def reload(self) -> Outcome:
        """Compile the files (with the providers' fragments); when they compile, the workers
        load the result, all of them or none (`_roll_out`); else log why not. Counted once."""
        async with self._lock:  # one compile at a time; generations in order
            if self.newest is None:  # a SIGHUP before generation 1 (start_with_providers) is out
                return Failed("the gateway is starting: nothing to reload yet")
            compiled = await self._compile(compile_for_workers, self.paths, self.fragments)
            if isinstance(compiled, Rejected):
                text = render_text(compiled.diagnostics, compiled.sources)
                _log.error(
                    "configuration rejected, the workers keep serving generation %d:\n%s",
                    self.generation,
                    text,
                )
                self._count(success=False)
                return compiled
            if isinstance(compiled, Failed):
                self._count(success=False)
                return compiled
            outcome = await self._roll_out(compiled, self.fragments)
            if isinstance(outcome, Accepted):
                self._reconcile_providers(compiled.graph)
            return outcome

    async def apply_fragments(self, fragments: dict[str, Fragment]) -> None:
        """A providers' update (runtime/providers.py calls it, throttled): the files of the
        newest generation with `fragments`, published as the next one. Raises CompileError (or
        OSError) when they are not: the providers' set logs it once, keeps the fragments it had
        accepted, and no worker hears of it."""
        async with self._lock:
            assert self.files is not None, "kept while there are providers"
            compiled = await self._compile(compile_with, self.files, self.paths, fragments)
            if isinstance(compiled, Rejected | Failed):
                self._count(success=False)
            if isinstance(compiled, Rejected):
                raise compiled.error()
            if isinstance(compiled, Failed):
                raise OSError(compiled.message)
            outcome = await self._roll_out(compiled, fragments)
            if isinstance(outcome, Failed):
                raise OSError(outcome.message)

    async def start_with_providers(self) -> Rejected | Failed | None:
        """Generation 1 of a configuration naming dynamic providers (before any worker starts):
        the providers start, and the files are compiled with their first fragments, as a single
        gateway does (Gateway._first_compile): each provider's first answer is awaited (at most
        FIRST_ANSWER seconds); fragments that do not compile with the files are left out and
        tried again once the workers serve, rejected alone if they still do not compile. When
        the files do not compile even alone, why (and nothing is published)."""
        async with self._lock:  # a SIGHUP meanwhile reloads once this is published
            return await self._start_with_providers()

    async def _start_with_providers(self) -> Rejected | Failed | None:
        from ..compiler.pipeline import load_files

        files = await anyio.to_thread.run_sync(load_files, self.paths)
        settings, diagnostics = files.settings()
        if settings is None:
            return Rejected(diagnostics, dict(files.loaded.sources))
        providers = self._providers()

        def attempt(fragments: Mapping[str, Fragment]) -> Awaitable[Compiled | Rejected | Failed]:
            return self._compile(compile_with, files, self.paths, fragments)

        compiled, first = await providers.first_compile(
            settings.providers, attempt, lambda result: isinstance(result, Rejected)
        )
        if isinstance(compiled, Rejected | Failed):
            return compiled
        try:
            self.publish(compiled, first)
        except OSError as exc:  # a full disk, say
            return Failed(f"cannot hand the graph to the workers: {exc}")
        providers.started_with(first)
        self._reconcile_providers(compiled.graph)
        return None

    async def _compile(
        self, compile: Callable[..., Compiled | Rejected], *args: Any
    ) -> Compiled | Rejected | Failed:
        """`compile(*args)` in a thread, the memory only compiling needed released after."""
        try:
            return await anyio.to_thread.run_sync(compile, *args)
        except Exception as exc:  # unreadable files are diagnostics; this is anything else
            _log.error("reload failed, the workers keep serving generation %d: %s", self.generation, exc)
            return Failed(f"reload failed: {exc}")
        finally:
            from .gateway import release_compile_memory

            release_compile_memory()

    async def _roll_out(self, compiled: Compiled, fragments: Mapping[str, Fragment]) -> Accepted | Failed:
        """The next generation, `compiled`, loaded by every joined worker or by none: a
        two-phase transaction (runtime/twophase.py). Logged and counted once, whatever the
        outcome."""
        number = self.generation + 1
        if self._unreachable is not None:
            return self._failed(f"no channel to the workers: {self._unreachable}")
        try:
            candidate = await anyio.to_thread.run_sync(self._write_candidate, compiled, number)
        except OSError as exc:  # a full disk, say: the workers keep their graph
            return self._failed(f"cannot hand the graph to the workers: {exc}")
        _log.info("generation %d compiled: %d workers prepare it", number, len(self.members))
        vote = await self.members.prepare(number, candidate)
        error = vote.error
        if error is None:
            try:  # the commit point: a worker started from now on starts from it
                await anyio.to_thread.run_sync(self._commit_candidate, compiled, candidate, fragments)
            except OSError as exc:
                error = f"cannot hand the graph to the workers: {exc}"
        if error is not None:
            with contextlib.suppress(OSError):
                os.unlink(candidate)
        await self.members.decide(vote, commit=error is None)
        if error is not None:
            return self._failed(f"generation {number} was not loaded: {error}")
        _log.info("generation %d loaded by %d workers", number, len(vote.members))
        self._count(success=True)
        return Accepted(self.generation)

    def _failed(self, message: str) -> Failed:
        _log.error("reload failed, the workers keep serving generation %d: %s", self.generation, message)
        self._count(success=False)
        return Failed(f"reload failed: {message}")

    def _write_candidate(self, compiled: Compiled, number: int) -> str:
        return publish_graph(self.directory, Published(number, compiled.graph), candidate=True)

    def _commit_candidate(
        self, compiled: Compiled, candidate: str, fragments: Mapping[str, Fragment]
    ) -> None:
        self.newest = commit_graph(candidate)
        self._published(compiled, fragments)

    def _published(self, compiled: Compiled, fragments: Mapping[str, Fragment]) -> None:
        """`compiled` is the newest generation, as `newest` names it."""
        self.generation += 1
        self.provided, self.metrics = compiled.provided, compiled.metrics
        self.fragments = dict(fragments)
        self.files = compiled.files
        with contextlib.suppress(OSError):  # published all the same: older files linger, harmless
            prune_graphs(self.directory)

    def _providers(self) -> ProviderSet:
        if self.providers is None:
            from .providers import ProviderSet

            assert self._spawn is not None, "attach() comes first"
            self.providers = ProviderSet(
                self.apply_fragments, self._spawn, dict(os.environ), on_status=self._share_status
            )
        return self.providers

    def _share_status(self) -> None:
        """The providers' status, for every worker's health endpoint and metrics."""
        from .providers import write_status

        assert self.providers is not None
        try:
            write_status(self.status, self.providers)
        except OSError as exc:  # a full disk: the workers say what they read last
            _log.warning("cannot share the providers' status with the workers: %s", exc)

    def _reconcile_providers(self, graph: IRGraph) -> None:
        """Run the providers the newest generation names; keep its files while there are any."""
        from ..compiler.schema import Settings
        from .providers import reconciled

        config = graph.settings.providers if isinstance(graph.settings, Settings) else None
        self.providers = reconciled(self.providers, config, self._providers)
        if self.providers is None:
            self.files = None

    def _count(self, *, success: bool) -> None:
        """`a3s_gateway_config_reloads_total{result}`, once per reload of the gateway whatever
        its outcome, when the configuration it leaves serving has a `metrics` block. The workers
        count none (they only apply what the supervisor decided): the supervisor writes it to
        their shared metrics directory, which every worker's `/metrics` sums
        (runtime/observe/metrics.py; `supervise` set PROMETHEUS_MULTIPROC_DIR)."""
        if not self.metrics:
            return
        if self._reloads is None:
            from prometheus_client import Counter

            from .observe.metric_names import CONFIG_RELOADS

            name = CONFIG_RELOADS.name.removesuffix("_total")  # prometheus-client adds it
            self._reloads = Counter(name, CONFIG_RELOADS.help, CONFIG_RELOADS.labels, registry=None)
        self._reloads.labels("success" if success else "failure").inc()

    async def serve_control(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """The control socket, until cancelled; started before the first worker is (it joins
        once it serves). Without it no worker can be reached, and every reload fails."""
        try:
            listener = await anyio.create_unix_listener(self.control)
        except OSError as exc:  # a run directory path too long for a Unix socket, say
            self._unreachable = str(exc)
            _log.error("no channel to the workers, so no reload can be made: %s", exc)
            task_status.started()
            return
        async with listener:
            task_status.started()
            await listener.serve(self._answer)

    async def _answer(self, stream: anyio.abc.SocketStream) -> None:
        """One connection: a worker's reload request (`reload`: its admin API's), answered with
        the pickled outcome; or a worker joining the reloads (`join`), kept for its life."""
        async with stream:
            lines = BufferedByteReceiveStream(stream)
            try:
                request = decode(await lines.receive_until(b"\n", MAX_LINE))
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.DelimiterNotFound, OSError):
                return
            if request is not None and request.get("op") == "join":
                try:
                    member = Member(int(request["worker"]), int(request["pid"]), stream, lines)
                    generation = int(request["generation"])
                except (KeyError, TypeError, ValueError):
                    _log.error("a worker's join is malformed: %r", request)
                    return
                await self._join(member, generation)
            elif request is not None and request.get("op") == "reload":
                await self._answer_reload(stream)

    async def _answer_reload(self, stream: anyio.abc.SocketStream) -> None:
        outcome = await self.reload()
        try:
            await stream.send(pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL))
        except (OSError, anyio.BrokenResourceError):  # the worker left (it timed out, say)
            pass
        except Exception as exc:  # an answer that does not pickle: the worker says 500
            _log.error("cannot answer a worker's reload request: %s", exc)

    async def _join(self, member: Member, generation: int) -> None:
        """`member`, serving `generation`, takes part in the reloads from now on, until it exits.
        It waits for a reload in progress. Behind the newest generation (a reload committed
        while it started), it is brought to it first, and stopped (to be restarted from the
        newest) when it cannot load it: no worker serves another generation than the others."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(member.read)
                async with self._lock:
                    if generation != self.generation and not await self._catch_up(member, generation):
                        self._stop_worker(member.pid)
                        tg.cancel_scope.cancel()
                        return
                    self.members.add(member)
                _log.info("%s joined at generation %d", member, self.generation)
        finally:
            self.members.remove(member)

    async def _catch_up(self, member: Member, generation: int) -> bool:
        assert self.newest is not None
        _log.info(
            "%s started at generation %d: bringing it to generation %d", member, generation, self.generation
        )
        vote = await self.members.prepare(self.generation, self.newest, only=member)
        await self.members.decide(vote, commit=vote.error is None)
        if vote.error is not None:
            _log.error(
                "stopping %s, which cannot load generation %d: %s", member, self.generation, vote.error
            )
        return vote.error is None


async def ask_for_reload(control: str) -> Outcome:
    """A worker's reload request to its supervisor: the outcome, once every worker has loaded
    the new generation (or none has).

    A blocking socket in a thread, not the event loop's: a request is rare (an operator's
    reload), and anyio's Unix socket stream readies itself with `add_reader` callbacks that
    uvloop may run once more after the wait is over (asyncio.InvalidStateError in the log)."""
    data = await anyio.to_thread.run_sync(_ask, control, abandon_on_cancel=True)
    outcome = pickle.loads(data)
    if not isinstance(outcome, Accepted | Rejected | Failed):
        return Failed("the supervisor's answer is not an outcome")
    return outcome


def _ask(control: str) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(ANSWER_TIMEOUT)
        sock.connect(control)
        sock.sendall(encode({"op": "reload"}))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
