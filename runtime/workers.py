"""`run --workers N`: a supervisor and N worker processes sharing every port.

Each worker is a full gateway in its own process and event loop (`python -m
a3s_gateway.runtime.workers --config ... --graph ...`), binding every entrypoint with
SO_REUSEPORT so the kernel spreads connections over the workers. The supervisor serves nothing; it

- compiles the configuration, once for all the workers: at start (`run` compiled it before
  starting anything: a configuration with errors is reported once and no worker starts), and at
  each reload (SIGHUP, `--watch`, a worker's admin API reload). The graph is handed to the
  workers as a pickle in the run directory (runtime/handoff.py); a rejected reload is logged
  once and reaches no worker, so every worker keeps its graph (runtime/publisher.py);
- starts the workers and restarts one that exits unexpectedly, from the newest graph (not from
  the files, which may have changed since), after a backoff that doubles with each quick crash
  (0.25 s up to 10 s) and resets once a worker has stayed up for a while; when the workers keep
  crashing as soon as they start (a port taken by another program, say) it gives up and exits 1;
- runs each reload that compiles as a transaction with the workers, over the connection each
  keeps to its control socket: every worker loads the new generation or none does
  (runtime/twophase.py). A worker ignores SIGHUP (a terminal's hangup reaches the supervisor
  too); one still starting holds SIGHUP and SIGUSR1 until it serves (`held_signals`), so their
  default action never kills it;
- on SIGTERM or SIGINT forwards SIGTERM, waits for every worker to drain and exit, and exits 0;
- owns its run directory (mkdtemp, mode 0700), made before the first worker starts and deleted
  on exit: the published graphs (`graphs/`), the socket the workers take part in the reloads
  and ask for them on (`control.sock`), the workers' Prometheus metrics (prometheus-client's multiprocess mode,
  PROMETHEUS_MULTIPROC_DIR: a dead worker's live gauges are removed from it,
  runtime/observe/metrics.py) and `live/`, where the workers relay their live-feed state changes
  to each other (runtime/observe/relay.py).

Why the supervisor compiles: N compiles per reload were N times the CPU (a 10,000-router
reload is ~0.8 s), a bad configuration was reported N times, and the workers could disagree for
a moment, one on the new files and one still on the old; a worker restarted after a crash read
the files as they were then, possibly not what the others served. Now every worker serves the
same generation number for the same graph, and the compiler's pipeline is imported only here.

Dynamic providers (`providers { etcd {...} }`, anything but `file`) run here too, once for all
the workers: their changes are compiled with the files and published like a reload
(publisher.py), so a source is watched once and no worker runs a provider. The `file` provider's
directory is more files: the supervisor compiles and watches it.

With the workers, this module and `gateway.py` are the only places naming an event loop.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc

from ..compiler.diagnostics import render_text
from .protocols.http1_choice import HTTP1
from .publisher import Compiled, GraphPublisher, Rejected

__all__ = ["HELD_SIGNALS", "Supervisor", "held_signals", "supervise", "worker_main"]

_log = logging.getLogger("a3s_gateway.workers")
BACKOFF_MIN, BACKOFF_MAX = 0.25, 10.0
# A worker that stayed up this long is healthy again: its next crash restarts it quickly.
STABLE_AFTER = 10.0
# This many consecutive crashes within FAST_CRASH seconds of starting: give up.
MAX_FAST_CRASHES, FAST_CRASH = 5, 2.0


@dataclass(eq=False)
class _Worker:
    index: int
    process: anyio.abc.Process | None = None
    restarts: int = 0
    fast_crashes: int = 0
    backoff: float = BACKOFF_MIN
    started_at: float = field(default=0.0)


class Supervisor:
    def __init__(
        self,
        paths: Sequence[str],
        count: int,
        run_dir: str,
        publisher: GraphPublisher,
        *,
        backend: str,
        log_level: str | None,
        http1: str = "h11",
    ) -> None:
        self.command = [sys.executable, "-m", "a3s_gateway.runtime.workers", "--backend", backend]
        self.command += ["--http1", http1]
        if log_level:
            self.command += ["--log-level", log_level]
        for path in paths:
            self.command += ["--config", path]
        self.command += ["--supervisor", str(os.getpid())]
        self.paths = list(paths)
        self.workers = [_Worker(i) for i in range(count)]
        self.stopping = False
        self.stopped = anyio.Event()
        self.failed = False
        self._spawning = anyio.Lock()
        # The first compile with the providers (made in `run`: a scope needs the event loop).
        self._starting: anyio.CancelScope | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        # The run directory: where the workers' metrics meet and the graphs are handed to them
        # (see the module docstring), with the publisher of the graphs, made by `supervise`.
        self.run_dir = run_dir
        self.publisher = publisher

    def pids(self) -> list[int]:
        return [w.process.pid for w in self.workers if w.process is not None and w.process.returncode is None]

    def signal_all(self, signum: int) -> None:
        for worker in self.workers:
            if worker.process is not None and worker.process.returncode is None:
                try:
                    worker.process.send_signal(signal.Signals(signum))
                except ProcessLookupError:
                    pass

    async def run(self, watch: bool = False) -> int:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            self._starting = anyio.CancelScope()
            self.publisher.attach(self._spawn, self._stop_worker)
            tg.start_soon(self._handle_signals)  # a SIGTERM during the first compile: no worker starts
            started = self.publisher.newest is not None or await self._start_with_providers()
            if not started and not self.stopping:  # (stopping: no worker starts, exit 0)
                tg.cancel_scope.cancel()
                return 1
            # Where the workers join the reloads once they serve, and ask for their admin API's.
            await tg.start(self.publisher.serve_control)
            for worker in self.workers:
                tg.start_soon(self._keep_running, worker, tg.cancel_scope)
            if watch:
                from .watch import watch_config

                watcher = functools.partial(watch_config, self.paths, self._reload_all, self._provided)
                tg.start_soon(functools.partial(watcher, stop=self.stopped))
            # Every worker loop returns once stopping and its process has exited.
            await self._wait_workers_done()
            tg.cancel_scope.cancel()
        return 1 if self.failed else 0

    async def _wait_workers_done(self) -> None:
        while not (
            self.stopping and all(w.process is None or w.process.returncode is not None for w in self.workers)
        ):
            await anyio.sleep(0.05)

    def _spawn(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """A task of the supervisor's (the providers'), cancelled when it exits."""
        assert self._tg is not None
        self._tg.start_soon(fn, *args)

    async def _start_with_providers(self) -> bool:
        """Generation 1 compiled with the dynamic providers' first fragments (publisher.py),
        before any worker starts; False (the files' errors printed) when the files do not
        compile."""
        _log.info("starting the providers: generation 1 is compiled with their first answers")
        assert self._starting is not None
        with self._starting:  # cancelled by a SIGTERM: then no worker starts
            outcome = await self.publisher.start_with_providers()
        if self._starting.cancel_called:
            return False
        if outcome is None:
            return True
        if isinstance(outcome, Rejected):
            print(
                render_text(outcome.diagnostics, outcome.sources, color=sys.stderr.isatty()), file=sys.stderr
            )
        else:
            print(f"a3s-gateway run: {outcome.message}", file=sys.stderr)
        return False

    async def _reload_all(self) -> None:
        """SIGHUP and `--watch`: compile once; the workers load the result (publisher.py)."""
        await self.publisher.reload()

    def _stop_worker(self, pid: int) -> None:
        """Stop the worker `pid`, which cannot serve the newest generation: it is restarted from it."""
        if pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _provided(self) -> list[str]:
        """The file provider's paths to watch, as the last configuration that compiled names them."""
        return self.publisher.provided

    async def _handle_signals(self) -> None:
        signums = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
        with anyio.open_signal_receiver(*signums) as signals:
            async for signum in signals:
                if signum == signal.SIGUSR1:
                    self.signal_all(signal.SIGUSR1)  # each worker reopens its access log file
                elif signum == signal.SIGHUP:
                    # A task: signals (a SIGTERM) are still handled while the files compile.
                    _log.info("SIGHUP: compiling %s", ", ".join(self.paths))
                    assert self._tg is not None
                    self._tg.start_soon(self._reload_all)
                else:
                    _log.info("%s: draining %d workers", signal.Signals(signum).name, len(self.pids()))
                    self.stop()

    def stop(self) -> None:
        self.stopping = True
        self.stopped.set()
        if self._starting is not None:
            self._starting.cancel()
        self.signal_all(signal.SIGTERM)

    async def _keep_running(self, worker: _Worker, scope: anyio.CancelScope) -> None:
        while not self.stopping:
            worker.started_at = time.monotonic()
            # One spawn at a time: the signal mask is the thread's, not the task's.
            async with self._spawning:
                with held_signals():
                    worker.process = await anyio.open_process(
                        [*self.command, *self._handoff(), "--worker-index", str(worker.index)],
                        stdin=subprocess.DEVNULL,
                        stdout=None,
                        stderr=None,
                        env=self._worker_env(),
                    )
            _log.info("worker %d started (pid %d)", worker.index, worker.process.pid)
            code = await worker.process.wait()
            self._forget_metrics(worker.process.pid)
            if self.stopping:
                return
            await self._after_crash(worker, code)

    def _handoff(self) -> list[str]:
        """A worker's start: the newest generation (a restarted worker serves what the others
        do, not the files as they are now), and where to ask for a reload."""
        assert self.publisher.newest is not None, "supervise publishes generation 1 first"
        return ["--graph", self.publisher.newest, "--control", self.publisher.control]

    def _worker_env(self) -> dict[str, str]:
        from .observe.metrics import MULTIPROC_ENV
        from .observe.relay import LIVE_DIR_ENV

        return {**os.environ, MULTIPROC_ENV: self.run_dir, LIVE_DIR_ENV: self._live_dir()}

    def _live_dir(self) -> str:
        return os.path.join(self.run_dir, "live")

    def _forget_metrics(self, pid: int) -> None:
        """A worker exited: its live gauges (open connections, streams) no longer count; its
        counters stay, so the sums over the workers never go back. Its live-feed socket goes
        (a worker that was killed could not remove it)."""
        from prometheus_client import multiprocess

        from .observe.relay import SUFFIX

        multiprocess.mark_process_dead(pid, self.run_dir)  # type: ignore[no-untyped-call]
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self._live_dir(), f"{pid}{SUFFIX}"))

    async def _after_crash(self, worker: _Worker, code: int) -> None:
        uptime = time.monotonic() - worker.started_at
        if uptime >= STABLE_AFTER:
            worker.backoff, worker.fast_crashes = BACKOFF_MIN, 0
        worker.fast_crashes = worker.fast_crashes + 1 if uptime < FAST_CRASH else 0
        if worker.fast_crashes >= MAX_FAST_CRASHES:
            _log.error("worker %d keeps exiting at start (code %s); giving up", worker.index, code)
            self.failed = True
            self.stop()
            return
        _log.warning(
            "worker %d exited (code %s) after %.1fs; restarting in %.2fs",
            worker.index,
            code,
            uptime,
            worker.backoff,
        )
        worker.restarts += 1
        await anyio.sleep(worker.backoff)
        worker.backoff = min(worker.backoff * 2, BACKOFF_MAX)


# The signals the supervisor passes on to its workers that a worker only handles once it serves.
HELD_SIGNALS = (signal.SIGHUP, signal.SIGUSR1)


@contextmanager
def held_signals() -> Iterator[None]:
    """Block HELD_SIGNALS in this thread while a worker is spawned, which inherits the mask.

    A worker starting Python has no handler yet, and the default action of SIGHUP and SIGUSR1
    is to terminate: a SIGHUP sent to the process group (a terminal's hangup) or a SIGUSR1
    forwarded then (logrotate) would kill it. Held instead, they stay pending in the worker
    until it serves and releases them (`serve_until_signalled`), which reopens its access log
    on SIGUSR1 and ignores SIGHUP (its supervisor's reloads reach it over the control socket,
    runtime/twophase.py, which a worker joins once it serves: one that committed during its
    start-up is then brought to it).
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def supervise(
    paths: Sequence[str],
    count: int,
    first: list[Compiled],
    *,
    backend: str = "asyncio",
    watch: bool = False,
    log_level: str | None = None,
    http1: str = "h11",
) -> int:
    """Run `count` workers serving the graph in `first` (generation 1, compiled by `run`) until
    SIGTERM/SIGINT; the exit code of the `run` command. `first` is emptied once the graph is
    published: then nothing in the supervisor keeps it (10,000 routers are tens of MiB)."""
    _log.info("supervisor (pid %d) starting %d workers", os.getpid(), count)
    run_dir = tempfile.mkdtemp(prefix="a3s-gateway-run-")  # mode 0700
    # Set before prometheus-client is imported here: the rejections the supervisor counts
    # (publisher.py) go to the workers' shared files.
    from .observe.metrics import MULTIPROC_ENV

    os.environ[MULTIPROC_ENV] = run_dir
    os.mkdir(os.path.join(run_dir, "live"), 0o700)  # the live feed's relay
    try:
        try:
            publisher = GraphPublisher(run_dir, paths)
            if first:  # else dynamic providers: Supervisor.run compiles generation 1 with them
                publisher.publish(first.pop())
        except OSError as exc:  # a full disk, say
            print(f"a3s-gateway run: cannot hand the graph to the workers: {exc}", file=sys.stderr)
            return 1
        supervisor = Supervisor(
            paths, count, run_dir, publisher, backend=backend, log_level=log_level, http1=http1
        )
        # The supervisor itself only waits on processes and signals: plain asyncio is enough.
        result: int = anyio.run(supervisor.run, watch, backend="asyncio")
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    return result


def worker_main(argv: Sequence[str] | None = None) -> int:
    """One worker process: a gateway with SO_REUSEPORT listeners, until SIGTERM."""
    from .gateway import configure_logging, run_async, serve_until_signalled

    parser = argparse.ArgumentParser(prog="a3s-gateway worker")
    parser.add_argument("--config", action="append", required=True)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--worker-index", type=int, default=0)
    parser.add_argument("--supervisor", type=int, default=None, help="the supervisor's pid")
    parser.add_argument("--http1", choices=["h11", "fast"], default="h11")
    # Always given (Supervisor._handoff): a worker serves the supervisor's graph, never its own.
    parser.add_argument("--graph", required=True, help="the published generation to start from")
    parser.add_argument("--control", default=None, help="the supervisor's reload socket")
    args = parser.parse_args(argv)
    HTTP1.use(args.http1)
    _die_with_parent()
    configure_logging(args.log_level)
    from .handoff import GraphFollower

    try:
        follower = GraphFollower(args.graph, args.control, args.worker_index)
    except Exception as exc:  # unreadable, or written by another version of the gateway
        _log.error("worker %d cannot read its graph: %s", args.worker_index, exc)
        return 1
    serve = functools.partial(
        serve_until_signalled,
        args.config,
        reuse_port=True,
        supervisor=args.supervisor,
        worker=args.worker_index,
        follower=follower,
    )
    return run_async(serve, args.backend)


def _die_with_parent() -> None:
    """Linux: a worker whose supervisor died (even by SIGKILL) gets SIGTERM and drains."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(worker_main())
