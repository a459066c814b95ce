"""The graphs the supervisor of `run --workers N` compiles, handed to its workers as files.

The supervisor compiles the configuration once per reload (runtime/workers.py) and publishes
the result as one numbered file in its private run directory:

    <run dir>/graphs/graph-000000007.pickle     Published(generation=7, graph=IRGraph)

- **Private.** The run directory is the supervisor's `mkdtemp` (mode 0700) and each file is
  written 0600: a graph holds the secrets the configuration interpolated (API keys, JWT
  secrets). Only processes of the same user can read it, and only they can write it, which is
  also why loading it with `pickle` is safe here: nobody else can put a file there.
- **Atomic.** A file is written under a temporary name and renamed into place, so a worker never
  reads half a graph; generations only go up, and the newest is the highest number.
- **Whole.** A configuration naming dynamic providers (`providers { etcd {...} }`) is published
  compiled with their fragments: the providers run in the supervisor (runtime/publisher.py),
  and a worker given a graph runs none. Their status is beside the graphs, in
  `<run dir>/providers.json` (runtime/providers.py, MirroredProviders).

A worker starts from the file it is given (`--graph`), or from the newest when that one was
pruned meanwhile, and on SIGHUP loads the newest (`GraphFollower`). It never compiles a graph
it is handed: it only unpickles it, and the compiler's pipeline is never imported.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from ..compiler.collector import collector_paused
from ..compiler.diff import GraphDiff
from .atomic_file import replacing

if TYPE_CHECKING:
    from ..compiler.ir import IRGraph
    from .gateway import Gateway

__all__ = [
    "GRAPHS",
    "PROVIDERS",
    "GraphFollower",
    "Published",
    "generation_of",
    "newest_graph",
    "prune_graphs",
    "publish_graph",
    "read_graph",
]

_log = logging.getLogger("a3s_gateway")

# The subdirectory of the supervisor's run directory that holds the published graphs.
GRAPHS = "graphs"
# The file in the run directory where the supervisor keeps its providers' status for the workers
# (runtime/providers.py, MirroredProviders).
PROVIDERS = "providers.json"
_NAME = re.compile(r"^graph-(\d+)\.pickle$")
# How many published files stay: the newest and the one before, which a worker spawned just
# before the newest was published may still be about to read (it falls back to the newest).
KEEP = 2


@dataclass(frozen=True)
class Published:
    """One generation of the configuration, as the supervisor hands it to the workers."""

    generation: int
    graph: IRGraph


def publish_graph(directory: str, published: Published) -> str:
    """Write `published` into `directory` (0600, atomically); the path of the file."""
    path = os.path.join(directory, f"graph-{published.generation:09d}.pickle")
    with replacing(path) as fh:  # no fsync: a crash takes the workers that would read it
        pickle.dump(published, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def read_graph(path: str) -> Published:
    """The generation published at `path`; when that file is gone (pruned by a newer one), the
    newest in its directory. Raises OSError when there is none."""
    try:
        # Paused: unpickling makes every object of the graph at once (10^6 for 10,000 routers),
        # and the collector's passes over them would triple its CPU time (compiler/collector.py).
        with open(path, "rb") as fh, collector_paused():
            published = pickle.load(fh)
    except FileNotFoundError:
        newest = newest_graph(os.path.dirname(path))
        if newest is None or newest == path:
            raise
        return read_graph(newest)
    if not isinstance(published, Published):
        raise OSError(f"{path}: not a published graph")
    return published


def generation_of(path: str) -> int | None:
    """The generation a published file's name gives (`publish_graph`), or None."""
    match = _NAME.match(os.path.basename(path))
    return int(match[1]) if match else None


def _published(directory: str) -> list[tuple[int, str]]:
    """The files published in `directory`, by generation, oldest first."""
    return sorted((int(m[1]), name) for name in os.listdir(directory) if (m := _NAME.match(name)))


def newest_graph(directory: str) -> str | None:
    """The path of the highest generation published in `directory`, or None."""
    numbered = _published(directory)
    return os.path.join(directory, numbered[-1][1]) if numbered else None


def prune_graphs(directory: str, keep: int = KEEP) -> None:
    """Remove all but the `keep` newest published files."""
    for _, name in _published(directory)[:-keep]:
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass


class GraphFollower:
    """A worker's side of the hand-off: the generation it serves and the supervisor's newer ones.

    `follow` (SIGHUP) loads the newest published generation unless it already serves it: a
    worker started after the reload it is signalled for, or a reload that both its SIGHUP and
    its admin API's request apply, loads it once. Generations are the supervisor's, so every
    worker reports the same number for the same graph.
    """

    def __init__(self, path: str, control: str | None = None) -> None:
        self.directory = os.path.dirname(path)
        self.control = control
        # The supervisor's providers' status, which the worker's health and metrics report.
        self.providers = os.path.join(os.path.dirname(self.directory), PROVIDERS)
        self._first: Published | None = read_graph(path)
        self._applied = self._first.generation
        self._plan: GraphDiff | None = None
        self._lock: anyio.Lock | None = None

    def take_first(self) -> Published:
        """The generation the worker starts from, handed over once: the follower keeps no
        graph (tens of MiB for 10,000 routers) that the worker may no longer serve."""
        first, self._first = self._first, None
        if first is None:
            raise RuntimeError("the first generation was already taken")
        return first

    async def follow(self, gateway: Gateway) -> GraphDiff:
        """Serve the newest published generation (raises as Gateway.reload does)."""
        self._lock = self._lock or anyio.Lock()
        async with self._lock:
            path = newest_graph(self.directory)
            if path is None:
                raise OSError(f"no published graph in {self.directory}")
            # The file's name carries its generation: one already served is not read again
            # (a whole graph to unpickle, ~0.26 s for 10,000 routers).
            if generation_of(path) == self._applied:
                return self._plan or GraphDiff((), (), (), ())
            published = await anyio.to_thread.run_sync(read_graph, path)
            if published.generation == self._applied:  # the newest was pruned meanwhile
                return self._plan or GraphDiff((), (), (), ())
            plan = await gateway.reload(published.graph, generation=published.generation)
            self._applied, self._plan = published.generation, plan
            return plan

    async def reload_all(self, gateway: Gateway) -> GraphDiff:
        """The admin API's reload: the supervisor compiles and signals every worker; this one
        then serves the new generation and answers with its changes, or raises the supervisor's
        CompileError (the 422), with nothing reloaded anywhere."""
        from .publisher import Accepted, Rejected, ask_for_reload

        if self.control is None:
            raise OSError("this worker has no channel to its supervisor (see the supervisor's log)")
        outcome = await ask_for_reload(self.control)
        if isinstance(outcome, Rejected):
            error = outcome.error()
            gateway.reload_rejected(error, count=False)  # the supervisor counted it
            raise error
        if not isinstance(outcome, Accepted):
            raise OSError(outcome.message)
        return await self.follow(gateway)
