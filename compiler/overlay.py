"""Environment overlays: `--env production` (or `GATEWAY_ENV=production`) reads
`gateway.production.hcl` over `gateway.hcl`.

For each configuration file on the command line, `<name>.<env>.hcl` beside it, when it exists,
is loaded on its own and laid over the merged files: a key it sets replaces the files' value (a
block's keys one by one, a list or a value as a whole), and a key it adds is added. Its
diagnostics point into the overlay file. An environment named with no overlay file beside any
of the files is an error: a misspelt `--env` must not fall back to the defaults silently.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from .diagnostics import Diagnostics
from .merge import LoadedConfig, Path, load_config

__all__ = ["ENV_VARIABLE", "apply_overlay", "overlay_files"]

ENV_VARIABLE = "GATEWAY_ENV"


def overlay_files(paths: Sequence[str], name: str) -> list[str]:
    """The `<file>.<name>.hcl` beside each file of `paths` that exists."""
    if not name:
        return []
    found = []
    for path in paths:
        if os.path.isfile(path):
            stem, ext = os.path.splitext(path)
            candidate = f"{stem}.{name}{ext or '.hcl'}"
            if os.path.isfile(candidate):
                found.append(candidate)
    return found


def apply_overlay(
    loaded: LoadedConfig, paths: Sequence[str], env: Mapping[str, str], diags: Diagnostics
) -> LoadedConfig:
    """The loaded files with the overlay of `GATEWAY_ENV` laid over them (none when unset)."""
    name = env.get(ENV_VARIABLE, "")
    if not name:
        return loaded
    files = overlay_files(paths, name)
    if not files:
        wanted = ", ".join(f"{os.path.splitext(p)[0]}.{name}.hcl" for p in paths if os.path.isfile(p))
        diags.error(
            f"environment '{name}' ({ENV_VARIABLE} or --env) has no overlay file: {wanted or 'no file given'}",
            code="io",
        )
        return loaded
    overlay = load_config(files, env, diags)
    tree: dict[str, Any] = _copy(loaded.tree)
    replaced: list[Path] = []
    _lay(tree, overlay.tree, (), replaced)
    spans = loaded.spans.overlaid(overlay.spans, replaced)
    return LoadedConfig(tree, spans, {**loaded.sources, **overlay.sources})


def _lay(base: dict[str, Any], over: Mapping[str, Any], path: Path, replaced: list[Path]) -> None:
    """Lay `over` on `base` in place: blocks key by key, anything else whole; `replaced` gets
    the paths whose value is now the overlay's."""
    for key, value in over.items():
        here = (*path, key)
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _lay(base[key], value, here, replaced)
        else:
            base[key] = value
            replaced.append(here)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
