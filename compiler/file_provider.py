"""The file provider: `providers { file { directory = "conf.d" } }` adds more configuration files.

As in Traefik, the file provider's files hold more of the configuration (routers, services,
middlewares...). They are loaded with the files named on the command line and merged the same
way, in name order (a directory stands for its `*.hcl` files), so a name defined twice is an error
naming both places (the provider's own block too: the files it loads cannot configure it again).
`run --watch` also watches them: a file added, changed or removed in the directory reloads the
gateway (runtime/watch.py), unless the provider says `watch = false`.

A relative `directory` or `filename` is relative to the file that declares it, so a config reads
the same files whatever the working directory of `compile --check` or `run`. The resolved path
replaces the written one in the tree, so the compiled settings say which files were read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .diagnostics import Diagnostics

if TYPE_CHECKING:  # merge.py calls provided_paths while it loads
    from .merge import SpanMap

__all__ = ["provided_paths", "watched_paths"]

_BLOCK = ("providers", "file")


def provided_paths(tree: Mapping[str, Any], spans: SpanMap, diags: Diagnostics) -> list[str]:
    """The directory and file the file provider names, resolved; the tree gets the resolved paths."""
    providers = tree.get("providers")
    block = providers.get("file") if isinstance(providers, dict) else None
    if not isinstance(block, dict):
        return []
    found: list[str] = []
    for key, is_kind, kind in (
        ("directory", os.path.isdir, "directory"),
        ("filename", os.path.isfile, "file"),
    ):
        value = block.get(key)
        if not isinstance(value, str):  # absent, or a wrong type that validation reports
            continue
        span = spans.value_span((*_BLOCK, key))
        base = os.path.dirname(span.file) if span is not None else ""
        resolved = os.path.normpath(os.path.join(base, value)) if value else value
        if not value or not is_kind(resolved):
            diags.error(f"file provider: {resolved or value!r} is not a {kind}", span, code="io")
            continue
        block[key] = resolved
        found.append(resolved)
    return found


def watched_paths(settings: Any) -> list[str]:
    """What `--watch` watches besides the command line's files: the provider's, unless watch = false."""
    providers = getattr(settings, "providers", None)
    file = getattr(providers, "file", None)
    if file is None or not file.watch:
        return []
    return [p for p in (file.directory, file.filename) if p]
