"""The supervisor's half of `run --workers N` reloads: compile once, publish, answer the workers.

`GraphPublisher.reload()` is what SIGHUP, `--watch` and a worker's admin API reload all come to
(runtime/workers.py). It compiles the files in a thread (the supervisor keeps reaping and
restarting workers meanwhile), and then:

- **rejected**: the diagnostics are logged once, in the format `run` prints them, no file is
  written and no worker is signalled: every worker keeps serving its graph, unchanged;
- **accepted**: the graph is published as the next generation (runtime/handoff.py) and every
  worker is sent SIGHUP, on which it loads that file; a worker started later starts from it.

A worker's `POST /api/gateway/reload` needs the outcome, diagnostics included, to answer 422
or 200: it asks over a Unix socket in the run directory (`control.sock`), and the supervisor
answers with the pickled `Outcome` once the reload is done (and the workers signalled).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from ..compiler.diagnostics import CompileError, Diagnostics, render_text
from ..compiler.source import SourceFile
from .handoff import GRAPHS, Published, prune_graphs, publish_graph

if TYPE_CHECKING:
    from ..compiler.ir import IRGraph
    from ..compiler.schema import Settings

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
    # None when the settings name dynamic providers: the workers compile with their fragments.
    graph: IRGraph | None
    # What `--watch` watches besides the command line's files (runtime/watch.py).
    provided: list[str] = field(default_factory=list)
    # Whether the settings have a `metrics` block: a rejected reload is counted then.
    metrics: bool = False


def compile_for_workers(paths: Sequence[str]) -> Compiled | Rejected:
    """The files compiled for the workers (in a thread: pure CPU work).

    With dynamic providers in the settings, the files may reference what only the providers
    running in the workers know (`service = "api@etcd"`): only what can be checked without them
    is, the files' syntax and their settings; the rest is compiled and reported by each worker."""
    from ..compiler.pipeline import compile_loaded, load_files

    files = load_files(paths)
    settings, diagnostics = files.settings()
    if settings is None:
        return Rejected(diagnostics, dict(files.loaded.sources))
    if has_dynamic_providers(settings):
        return handed_to_workers(paths, settings, None)
    result = compile_loaded(files)
    if result.graph is None:
        return Rejected(result.diagnostics, result.sources)
    return handed_to_workers(paths, settings, result.graph)


def has_dynamic_providers(settings: Settings) -> bool:
    """Whether `settings` name a provider whose objects exist only in the workers that run it."""
    return settings.providers is not None and bool(settings.providers.kinds)


def handed_to_workers(paths: Sequence[str], settings: Settings, graph: IRGraph | None) -> Compiled:
    """`graph`, compiled from `paths` whose settings are `settings`, as the workers are handed it
    (at start by `run`, at a reload by `compile_for_workers`): no graph with dynamic providers."""
    from .watch import extra_paths

    return Compiled(
        None if has_dynamic_providers(settings) else graph,
        extra_paths(paths, settings),
        settings.metrics is not None,
    )


class GraphPublisher:
    """The generations of one supervisor, published in its run directory (see module docstring)."""

    def __init__(self, run_dir: str, paths: Sequence[str]) -> None:
        self.paths = list(paths)
        self.directory = os.path.join(run_dir, GRAPHS)
        os.makedirs(self.directory, 0o700, exist_ok=True)
        self.control = os.path.join(run_dir, CONTROL)
        self.generation = 0
        self.newest: str | None = None
        self.provided: list[str] = []
        self.metrics = False
        self._failures: Any = None  # the rejections' counter, made at the first one
        self._lock = anyio.Lock()

    def publish(self, compiled: Compiled) -> str:
        """Publish `compiled` as the next generation; the path of its file."""
        published = Published(self.generation + 1, compiled.graph)
        self.newest = publish_graph(self.directory, published)
        self.generation = published.generation
        self.provided, self.metrics = compiled.provided, compiled.metrics
        with contextlib.suppress(OSError):  # published all the same: older files linger, harmless
            prune_graphs(self.directory)
        return self.newest

    async def reload(self, signal_workers: Callable[[], None]) -> Outcome:
        """Compile the files; publish and `signal_workers()` when they compile, else log why not."""
        async with self._lock:  # one compile at a time; generations in order
            try:
                compiled = await anyio.to_thread.run_sync(compile_for_workers, self.paths)
            except Exception as exc:  # unreadable files are diagnostics; this is anything else
                _log.error("reload failed, the workers keep serving generation %d: %s", self.generation, exc)
                return Failed(f"reload failed: {exc}")
            finally:
                from .gateway import release_compile_memory

                release_compile_memory()
            if isinstance(compiled, Rejected):
                text = render_text(compiled.diagnostics, compiled.sources)
                _log.error(
                    "configuration rejected, the workers keep serving generation %d:\n%s",
                    self.generation,
                    text,
                )
                self._count_rejection()
                return compiled
            try:
                await anyio.to_thread.run_sync(self.publish, compiled)
            except OSError as exc:  # a full disk, say: the workers keep their graph
                _log.error("reload failed, the workers keep serving generation %d: %s", self.generation, exc)
                return Failed(f"cannot hand the graph to the workers: {exc}")
            if compiled.graph is not None:
                _log.info("generation %d compiled: reloading the workers", self.generation)
            else:  # dynamic providers: each worker compiles the files with its fragments
                _log.info("generation %d: the workers compile it with their providers", self.generation)
            signal_workers()
            return Accepted(self.generation)

    def _count_rejection(self) -> None:
        """`a3s_gateway_config_reloads_total{result="failure"}`, once per rejected configuration,
        when the running one has a `metrics` block: no worker reloads (nor counts) it, so the
        supervisor writes it to the workers' shared metrics directory, which every worker's
        `/metrics` sums (runtime/observe/metrics.py; `supervise` set PROMETHEUS_MULTIPROC_DIR)."""
        if not self.metrics:
            return
        if self._failures is None:
            from prometheus_client import Counter

            from .observe.metric_names import CONFIG_RELOADS

            name = CONFIG_RELOADS.name.removesuffix("_total")  # prometheus-client adds it
            self._failures = Counter(name, CONFIG_RELOADS.help, CONFIG_RELOADS.labels, registry=None)
        self._failures.labels("failure").inc()

    async def serve_requests(self, signal_workers: Callable[[], None]) -> None:
        """Answer the workers' reload requests on the control socket (until cancelled)."""
        try:
            listener = await anyio.create_unix_listener(self.control)
        except OSError as exc:  # a run directory path too long for a Unix socket, say
            _log.warning("no reload channel for the workers' admin API: %s", exc)
            return

        async def answer(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                outcome = await self.reload(signal_workers)
                try:
                    await stream.send(pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL))
                except (OSError, anyio.BrokenResourceError):  # the worker left (it timed out, say)
                    pass
                except Exception as exc:  # an answer that does not pickle: the worker says 500
                    _log.error("cannot answer a worker's reload request: %s", exc)

        async with listener:
            await listener.serve(answer)


async def ask_for_reload(control: str) -> Outcome:
    """A worker's reload request to its supervisor: the outcome, once the workers are signalled.

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
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
