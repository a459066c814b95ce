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
- **Committed.** A reload's graph is first written as a candidate (`next-000000008.pickle`),
  which the workers prepare; it takes its committed name only once every worker could build it
  (runtime/twophase.py), and is deleted otherwise. So every `graph-*` file is a generation the
  workers served, and a worker (re)started meanwhile starts from one of those.
- **Whole.** A configuration naming dynamic providers (`providers { etcd {...} }`) is published
  compiled with their fragments: the providers run in the supervisor (runtime/publisher.py),
  and a worker given a graph runs none. Their status is beside the graphs, in
  `<run dir>/providers.json` (runtime/providers.py, MirroredProviders).

A worker starts from the file it is given (`--graph`), or from the newest when that one was
pruned meanwhile, and loads the later ones its supervisor's reloads name (`GraphFollower`). It
never compiles a graph it is handed: it only unpickles it, and the compiler's pipeline is never
imported.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from ..compiler.collector import collector_paused
from ..compiler.diff import GraphDiff
from .atomic_file import replacing
from .twophase import MAX_LINE, decode, encode

if TYPE_CHECKING:
    from ..compiler.ir import IRGraph
    from .gateway import Gateway

__all__ = [
    "GRAPHS",
    "PROVIDERS",
    "GraphFollower",
    "Published",
    "commit_graph",
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


def publish_graph(directory: str, published: Published, *, candidate: bool = False) -> str:
    """Write `published` into `directory` (0600, atomically); the path of the file. A
    `candidate` (a reload the workers have not all prepared yet: runtime/twophase.py) gets a
    name no worker starts from, until `commit_graph` gives it its generation's."""
    path = os.path.join(directory, f"{'next' if candidate else 'graph'}-{published.generation:09d}.pickle")
    with replacing(path) as fh:  # no fsync: a crash takes the workers that would read it
        pickle.dump(published, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def commit_graph(candidate: str) -> str:
    """The candidate file `candidate` renamed to its generation's committed name; that path."""
    directory, name = os.path.split(candidate)
    path = os.path.join(directory, "graph-" + name.removeprefix("next-"))
    os.replace(candidate, path)
    return path


def read_graph(path: str, *, exact: bool = False) -> Published:
    """The generation published at `path`; when that file is gone (pruned by a newer one), the
    newest in its directory, unless `exact` (a candidate: only that one will do). Raises OSError
    when there is none."""
    try:
        # Paused: unpickling makes every object of the graph at once (10^6 for 10,000 routers),
        # and the collector's passes over them would triple its CPU time (compiler/collector.py).
        with open(path, "rb") as fh, collector_paused():
            published = pickle.load(fh)
    except FileNotFoundError:
        newest = None if exact else newest_graph(os.path.dirname(path))
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
    """A worker's side of the hand-off: the generation it serves, and its part in its
    supervisor's reloads.

    Once the worker serves, `run` joins the supervisor's reloads over the control socket and
    takes part in each as a member of a two-phase transaction (runtime/twophase.py): it builds
    the generation it is asked to prepare beside the running one, says whether it could, and
    swaps to it or drops it as the supervisor decides for all the workers. Generations are the
    supervisor's, so every worker reports the same number for the same graph.
    """

    def __init__(self, path: str, control: str | None = None, worker: int = 0) -> None:
        self.directory = os.path.dirname(path)
        self.control = control
        self.worker = worker
        # The supervisor's providers' status, which the worker's health and metrics report.
        self.providers = os.path.join(os.path.dirname(self.directory), PROVIDERS)
        self._first: Published | None = read_graph(path)
        self._applied = self._first.generation
        self._plan: GraphDiff | None = None
        self._swapped: anyio.Event | None = None  # set at each swap (made in the event loop)

    def take_first(self) -> Published:
        """The generation the worker starts from, handed over once: the follower keeps no
        graph (tens of MiB for 10,000 routers) that the worker may no longer serve."""
        first, self._first = self._first, None
        if first is None:
            raise RuntimeError("the first generation was already taken")
        return first

    async def run(self, gateway: Gateway, stop: anyio.Event) -> None:
        """Join the supervisor's reloads and take part in each, until the worker stops. A worker
        that loses the channel could no longer follow the others: it stops (`stop`), and its
        supervisor restarts it on the newest generation. One that cannot open it at all keeps
        its generation: its supervisor has no control socket either, and makes no reload."""
        if self.control is None:
            _log.warning("worker %d has no channel to its supervisor: it keeps its generation", self.worker)
            return
        try:
            link = _Link.connect(self.control)
        except OSError as exc:
            _log.warning("worker %d cannot join its supervisor's reloads: %s", self.worker, exc)
            return
        try:
            with link:
                hello = {"op": "join", "worker": self.worker, "pid": os.getpid(), "generation": self._applied}
                await link.send(hello)
                while (message := await link.receive()) is not None:
                    if message.get("op") == "prepare":
                        await self._prepare(gateway, link, message, stop)
                    elif message.get("op") == "decide":  # of a reload this worker could not build
                        await link.send({"op": "done", "txn": message.get("txn")})
        except OSError as exc:
            if not stop.is_set():
                _log.error("worker %d: the channel to its supervisor failed: %s", self.worker, exc)
        if not stop.is_set():
            _log.error("worker %d lost its supervisor's reloads: it stops, to be restarted", self.worker)
            stop.set()

    async def _prepare(self, gateway: Gateway, link: _Link, ask: dict[str, Any], stop: anyio.Event) -> None:
        """Build the generation `ask` names; answer; swap or drop it as the supervisor decides."""
        from .gateway import ReloadAborted

        txn, generation = ask.get("txn"), int(ask["generation"])
        answered = False

        async def confirm() -> bool:
            nonlocal answered
            answered = True
            await link.send({"op": "prepared", "txn": txn, "error": None})
            _log.info("worker %d prepared generation %d: waiting for the others", self.worker, generation)
            return await self._decision(link, txn, stop)

        try:
            published = await anyio.to_thread.run_sync(
                functools.partial(read_graph, str(ask["path"]), exact=True)
            )
            plan = await gateway.reload(published.graph, generation=generation, confirm=confirm)
        except ReloadAborted:
            pass
        except Exception as exc:
            if not answered:  # it could not build it; the supervisor's decision is answered in `run`
                await link.send({"op": "prepared", "txn": txn, "error": _describe(exc)})
            return
        else:
            self._applied, self._plan = generation, plan
            if self._swapped is not None:
                self._swapped.set()
            self._swapped = None
        await link.send({"op": "done", "txn": txn})

    @staticmethod
    async def _decision(link: _Link, txn: Any, stop: anyio.Event) -> bool:
        """Whether the supervisor commits transaction `txn`; False when the worker stops meanwhile
        or the supervisor is gone (then this worker is about to stop too)."""
        commit = False
        async with anyio.create_task_group() as tg:

            async def until_stop() -> None:
                await stop.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(until_stop)
            while (message := await link.receive()) is not None:
                if message.get("op") == "decide" and message.get("txn") == txn:
                    commit = message.get("commit") is True
                    break
            tg.cancel_scope.cancel()
        return commit

    async def reload_all(self, gateway: Gateway) -> GraphDiff:
        """The admin API's reload: the supervisor compiles, and every worker, this one included,
        loads the new generation (or none does); this one then answers with its changes. Raises
        the supervisor's CompileError (the 422), or OSError saying why no worker reloaded."""
        from .publisher import Accepted, Rejected, ask_for_reload

        if self.control is None:
            raise OSError("this worker has no channel to its supervisor (see the supervisor's log)")
        outcome = await ask_for_reload(self.control)
        if isinstance(outcome, Rejected):
            error = outcome.error()
            gateway.reload_rejected(error)
            raise error
        if not isinstance(outcome, Accepted):
            raise OSError(outcome.message)
        with anyio.fail_after(ANSWER_WAIT):  # swapped already, unless it joined meanwhile
            while self._applied < outcome.generation:
                self._swapped = self._swapped or anyio.Event()
                await self._swapped.wait()
        return self._plan or GraphDiff((), (), (), ())


# How long a worker whose admin API asked for a reload waits to have swapped to it.
ANSWER_WAIT = 60.0


def _describe(exc: BaseException) -> str:
    """An error's first line, as a build failure is reported by the supervisor."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:1000]


class _Link:
    """A worker's connection to its supervisor's control socket: one JSON object a line.

    A plain non-blocking socket read after `anyio.wait_readable`, as the live feed's relay is
    (runtime/observe/relay.py says why: anyio's Unix socket stream misbehaves on uvloop)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()

    @classmethod
    def connect(cls, path: str) -> _Link:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)  # a local listener: at once
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return cls(sock)

    def __enter__(self) -> _Link:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._sock.close()

    async def send(self, message: dict[str, Any]) -> None:
        data = memoryview(encode(message))
        while data:
            try:
                data = data[self._sock.send(data) :]
            except (BlockingIOError, InterruptedError):
                await anyio.wait_writable(self._sock)

    async def receive(self) -> dict[str, Any] | None:
        """The next message; None once the supervisor closed the connection."""
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > MAX_LINE:
                raise OSError("a message from the supervisor is too long")
            await anyio.wait_readable(self._sock)
            try:
                chunk = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            if not chunk:
                return None
            self._buffer += chunk
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return decode(line) or {}
