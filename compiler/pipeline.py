"""The compile pipeline: read and merge the files, merge the providers' fragments, lower, check.

The functions the package exports (`compile_config`, `load_files`, `compile_loaded`...) live
here rather than in `compiler/__init__.py`, so that importing the package, or one of its small
modules a running gateway needs (`ir`, `schema`, `diff`, `diagnostics`), does not load the HCL
reader, the merge, the lowering and the checks: a worker of `run --workers N` that receives its
graph compiled by the supervisor never compiles (runtime/workers.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .check import check
from .collector import collector_paused
from .diagnostics import CompileError, Diagnostic, Diagnostics
from .env_overrides import Override, apply_env_overrides
from .fragment import Fragment, merge_fragments
from .ir import IRGraph
from .lower import lower, settings_of
from .merge import LoadedConfig, load_config
from .overlay import apply_overlay
from .schema import Settings
from .source import SourceFile

__all__ = [
    "CompileResult",
    "LoadedFiles",
    "compile_config",
    "compile_loaded",
    "compile_or_raise",
    "load_files",
    "load_settings",
]


@dataclass(frozen=True)
class CompileResult:
    graph: IRGraph | None
    diagnostics: Diagnostics
    sources: dict[str, SourceFile]
    # What each GATEWAY_ environment variable set (compile --check --explain-env).
    overrides: tuple[Override, ...] = ()


@dataclass(frozen=True)
class LoadedFiles:
    """The files' part of a compile: read and merged, with their overlay and environment
    overrides, before any provider's fragment. A provider's update compiles the files as the
    running graph was compiled from them (runtime/providers.py), not as they are on disk now:
    an edit not yet reloaded is not applied by it, nor blamed on it when it does not compile.
    Compiling never changes it."""

    loaded: LoadedConfig
    diagnostics: tuple[Diagnostic, ...]
    overrides: tuple[Override, ...]

    def settings(self) -> tuple[Settings | None, Diagnostics]:
        """The gateway-wide settings (None when they do not validate), even when the rest does
        not compile: which providers to run is known before their fragments are."""
        diags = Diagnostics()
        diags.extend(self.diagnostics)
        settings = settings_of(self.loaded.tree, self.loaded.spans, diags)
        return (None if diags.has_errors else settings), diags


def load_files(paths: Sequence[str], env: Mapping[str, str] | None = None) -> LoadedFiles:
    """Read config files (or directories of `*.hcl`) with their overlay and GATEWAY_ overrides."""
    diags = Diagnostics()
    env = os.environ if env is None else env
    with collector_paused():
        loaded = load_config(list(paths), env, diags)
        loaded = apply_overlay(loaded, paths, env, diags)
        loaded, overrides = apply_env_overrides(loaded, env, diags)
    return LoadedFiles(loaded, tuple(diags), tuple(overrides))


def compile_loaded(files: LoadedFiles, fragments: Sequence[Fragment] = ()) -> CompileResult:
    """Compile loaded files and the providers' fragments (compiler/fragment.py) into an IR
    graph, collecting every diagnostic."""
    diags = Diagnostics()
    diags.extend(files.diagnostics)
    sources = tuple(sorted(p for p in files.loaded.sources if not p.startswith("env ")))
    with collector_paused():
        loaded = merge_fragments(files.loaded, fragments, diags)
        lowered = lower(loaded, diags)
        check(lowered, loaded.spans, diags)
        graph = None
        if not diags.has_errors:
            # Each edge once, by (src, label, dst): the key it is sorted by, and no pydantic
            # __hash__ call per edge (20,000 for 10,000 routers) as a set of them would make.
            edges = {(e.src, e.label, e.dst): e for e in lowered.edges}
            graph = IRGraph(
                nodes=tuple(sorted(lowered.nodes.values(), key=lambda n: n.id)),
                edges=tuple(edges[key] for key in sorted(edges)),
                settings=lowered.settings,
                sources=sources,
            )
    return CompileResult(graph, diags, dict(loaded.sources), files.overrides)


def compile_config(
    paths: Sequence[str], env: Mapping[str, str] | None = None, fragments: Sequence[Fragment] = ()
) -> CompileResult:
    """Compile config files (or directories of `*.hcl`) and the providers' fragments
    (compiler/fragment.py) into an IR graph, collecting every diagnostic."""
    with collector_paused():  # one pause over both halves (compiler/collector.py)
        return compile_loaded(load_files(paths, env), fragments)


def load_settings(
    paths: Sequence[str], env: Mapping[str, str] | None = None
) -> tuple[Settings | None, Diagnostics, dict[str, SourceFile]]:
    """The gateway-wide settings of the files (LoadedFiles.settings), and where they were read
    (`providers dump`, the supervisor's file provider paths)."""
    files = load_files(paths, env)
    settings, diags = files.settings()
    return settings, diags, dict(files.loaded.sources)


def compile_or_raise(
    paths: Sequence[str], env: Mapping[str, str] | None = None, fragments: Sequence[Fragment] = ()
) -> IRGraph:
    result = compile_config(paths, env, fragments)
    if result.graph is None:
        raise CompileError(result.diagnostics, result.sources)
    return result.graph
