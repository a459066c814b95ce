"""`run --watch`: reload when a configuration file changes.

Editors save by writing a temporary file and renaming it over the original, which replaces the
inode a watch on the file itself would follow; so we watch the directories that hold the
configuration and keep only events about the configuration files (or, for a directory given as
configuration, about its `*.hcl` files). Changes are debounced: one save is one reload.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

__all__ = ["config_filter", "watch_paths"]

_log = logging.getLogger("a3s_gateway.watch")


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
