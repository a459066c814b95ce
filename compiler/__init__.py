"""The compiler: configuration text in, a validated, immutable IR graph out.

    result = compile_config(["gateway.hcl"])
    if result.graph is None:
        print(render_text(result.diagnostics, result.sources))

No sockets, no event loop, no clock: `compile --check` runs exactly this, so it accepts exactly
what `run` accepts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .check import check
from .diagnostics import CompileError, Diagnostic, Diagnostics, render_json, render_text
from .diff import GraphDiff, diff
from .env_overrides import Override, apply_env_overrides
from .fragment import Fragment, merge_fragments
from .ir import Edge, IRGraph, Node
from .lower import lower, settings_of
from .merge import load_config
from .overlay import apply_overlay
from .schema import Settings
from .source import SourceFile, Span

__all__ = [
    "CompileError",
    "CompileResult",
    "Diagnostic",
    "Diagnostics",
    "Edge",
    "Fragment",
    "GraphDiff",
    "IRGraph",
    "Node",
    "SourceFile",
    "Span",
    "compile_config",
    "compile_or_raise",
    "diff",
    "load_settings",
    "render_json",
    "render_text",
]


@dataclass(frozen=True)
class CompileResult:
    graph: IRGraph | None
    diagnostics: Diagnostics
    sources: dict[str, SourceFile]
    # What each GATEWAY_ environment variable set (compile --check --explain-env).
    overrides: tuple[Override, ...] = ()


def compile_config(
    paths: Sequence[str], env: Mapping[str, str] | None = None, fragments: Sequence[Fragment] = ()
) -> CompileResult:
    """Compile config files (or directories of `*.hcl`) and the providers' fragments
    (compiler/fragment.py) into an IR graph, collecting every diagnostic."""
    diags = Diagnostics()
    env = os.environ if env is None else env
    loaded = load_config(list(paths), env, diags)
    loaded = apply_overlay(loaded, paths, env, diags)
    loaded, overrides = apply_env_overrides(loaded, env, diags)
    files = tuple(sorted(p for p in loaded.sources if not p.startswith("env ")))
    loaded = merge_fragments(loaded, fragments, diags)
    lowered = lower(loaded, diags)
    check(lowered, loaded.spans, diags)
    graph = None
    if not diags.has_errors:
        graph = IRGraph(
            nodes=tuple(sorted(lowered.nodes.values(), key=lambda n: n.id)),
            edges=tuple(sorted(set(lowered.edges), key=lambda e: (e.src, e.label, e.dst))),
            settings=lowered.settings,
            sources=files,
        )
    return CompileResult(graph, diags, dict(loaded.sources), tuple(overrides))


def load_settings(
    paths: Sequence[str], env: Mapping[str, str] | None = None
) -> tuple[Settings | None, Diagnostics, dict[str, SourceFile]]:
    """The gateway-wide settings of the files (with their overlay and environment overrides),
    even when the rest does not compile: which providers to run is known before their fragments
    are, which a file's references to a provider's objects need (`providers dump`)."""
    diags = Diagnostics()
    env = os.environ if env is None else env
    loaded = load_config(list(paths), env, diags)
    loaded = apply_overlay(loaded, paths, env, diags)
    loaded, _ = apply_env_overrides(loaded, env, diags)
    settings = settings_of(loaded.tree, loaded.spans, diags)
    return (None if diags.has_errors else settings), diags, dict(loaded.sources)


def compile_or_raise(
    paths: Sequence[str], env: Mapping[str, str] | None = None, fragments: Sequence[Fragment] = ()
) -> IRGraph:
    result = compile_config(paths, env, fragments)
    if result.graph is None:
        raise CompileError(result.diagnostics, result.sources)
    return result.graph
