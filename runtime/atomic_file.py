"""Replacing a file whole, private from its creation: the one way the gateway rewrites its files.

The new content goes to a temporary file beside the target, created mode 0600 by `mkstemp` (a
graph, a certificate's key or a status is never readable by another user, not even for the
moment before a chmod), and is then renamed over the target (POSIX rename is atomic): a reader
sees the old file or the new one, never half of either. A failure removes the temporary file
and leaves the target as it was.

`durable` adds what a crash needs as well: the bytes are fsynced before the rename and the
folder's entry after it, so the file that survives a power cut is whole (the ACME storage,
which holds keys that cannot be issued again at will). Files only running processes read (the
graphs handed to the workers, the providers' status) skip both: a crash makes them moot.

The temporary file is named `.<target name>.<random>.tmp`: hidden, and ending in `.tmp`, so a
reader listing the folder for targets by name never takes one for a target.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

__all__ = ["replacing"]


@contextlib.contextmanager
def replacing(path: str, *, durable: bool = False) -> Iterator[BinaryIO]:
    """A binary file to write the new content of `path` to; it replaces `path` when the block
    ends without an error (see the module docstring). The folder must exist."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    if durable:
        _sync_folder(folder)


def _sync_folder(folder: str) -> None:
    """Make the rename durable (the folder's entry), where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
