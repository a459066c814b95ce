"""Compiling with the cyclic garbage collector paused.

A 10,000-router compile allocates some 10^7 objects and frees almost all of them by reference
counting; what it keeps (the IR, the source spans) lives on. The collector cannot know that: its
allocation counter starts a collection every 700 allocations, and the full ones walk everything
the compile has built so far. Measured on a 10,000-router file, collections were a fifth of
`compile --check`'s CPU time (0.4 of 1.9 s). Pausing the collector for the compile and collecting
once after it, when the caller chooses (the gateway's release_compile_memory), does that work
once.

The pause is process-wide (the collector is): a compile in a worker thread pauses it for the
event loop as well, for the second or two it takes. Requests free what they allocate by
reference counting too; what cycles they leave waits for the collection after the compile.
Nested and concurrent pauses count: the collector comes back when the last one ends, and only
if it was on when the first began (a process that turned it off keeps it off).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_resume = False


@contextmanager
def collector_paused() -> Iterator[None]:
    global _depth, _resume
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.enable()
