"""`run --watch`: reload when a configuration file changes.

Editors save by writing a temporary file and renaming it over the original, which replaces the
inode a watch on the file itself would follow; so we watch the directories that hold the
configuration and keep only events about the configuration files (or, for a directory given as
configuration, about its `*.hcl` files). Changes are debounced: one save is one reload.

The file provider's directory or file (`providers { file { directory = ... } }`) is watched too,
as the compiled settings name it (compiler/file_provider.py). A reload can change which directory
that is; `watch_config` then restarts the watch on the new set.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

__all__ = ["config_filter", "extra_paths", "watch_config", "watch_paths"]

_log = logging.getLogger("a3s_gateway.watch")


def extra_paths(paths: Sequence[str], settings: Any) -> list[str]:
    """What is watched besides `paths`: the file provider's directory or file (unless it says
    `watch = false`) and the overlay files of `--env NAME` (compiler/overlay.py)."""
    from ..compiler.file_provider import watched_paths
    from ..compiler.overlay import ENV_VARIABLE, overlay_files

    return [*watched_paths(settings), *overlay_files(paths, os.environ.get(ENV_VARIABLE, ""))]


def config_filter(paths: Sequence[str]) -> tuple[list[str], Callable[[Any, str], bool]]:
    """(directories to watch, filter accepting changes to the configuration only)."""
    files = {os.path.abspath(p) for p in paths if not os.path.isdir(p)}
    dirs = {os.path.abspath(p) for p in paths if os.path.isdir(p)}
    roots = sorted(dirs | {os.path.dirname(f) for f in files})

    def accept(_change: Any, path: str) -> bool:
        path = os.path.abspath(path)
        if path in files:
            return True
        return path.endswith(".hcl") and any(path.startswith(d + os.sep) for d in dirs)

    return roots, accept


async def watch_paths(
    paths: Sequence[str],
    on_change: Callable[[], Awaitable[Any]],
    *,
    stop: anyio.Event | None = None,
    debounce_ms: int = 300,
) -> None:
    """Call `on_change()` after each (debounced) batch of changes to the configuration.

    Runs until `stop` is set (or forever). Set `stop` before cancelling: the watcher runs in a
    thread that only notices a cancellation at its next timeout, but sees `stop` at once.
    """
    from watchfiles import awatch

    roots, accept = config_filter(paths)
    _log.info("watching %s for changes", ", ".join(roots))
    changes_iter = awatch(*roots, watch_filter=accept, debounce=debounce_ms, step=50, stop_event=stop)
    async for changes in changes_iter:
        _log.info("configuration changed: %s", ", ".join(sorted({p for _, p in changes})))
        await on_change()


async def watch_config(
    paths: Sequence[str],
    on_change: Callable[[], Awaitable[Any]],
    extra: Callable[[], Sequence[str]],
    *,
    stop: anyio.Event,
) -> None:
    """`watch_paths` over `paths` plus `extra()` (the file provider's paths), until `stop` is set.

    `extra()` is asked again after each reload: when its answer changes, the watch restarts on the
    new set, so a provider directory added or moved by a reload is watched from then on.
    """
    while not stop.is_set():
        watched = [*paths, *extra()]
        restart = anyio.Event()

        async def changed(watched: list[str] = watched, restart: anyio.Event = restart) -> None:
            await on_change()
            if [*paths, *extra()] != watched:
                restart.set()

        async def relay_stop(restart: anyio.Event = restart) -> None:
            await stop.wait()
            restart.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(relay_stop)
            await watch_paths(watched, changed, stop=restart)
            tg.cancel_scope.cancel()
