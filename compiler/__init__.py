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
from .fragment import Fragment, merge_fragments
from .ir import Edge, IRGraph, Node
from .lower import lower
from .merge import load_config
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
    "render_json",
    "render_text",
]


@dataclass(frozen=True)
class CompileResult:
    graph: IRGraph | None
    diagnostics: Diagnostics
    sources: dict[str, SourceFile]


def compile_config(
    paths: Sequence[str], env: Mapping[str, str] | None = None, fragments: Sequence[Fragment] = ()
) -> CompileResult:
    """Compile config files (or directories of `*.hcl`) and the providers' fragments
    (compiler/fragment.py) into an IR graph, collecting every diagnostic."""
    diags = Diagnostics()
    loaded = load_config(list(paths), os.environ if env is None else env, diags)
    loaded = merge_fragments(loaded, fragments, diags)
    lowered = lower(loaded, diags)
    check(lowered, loaded.spans, diags)
    graph = None
    if not diags.has_errors:
        graph = IRGraph(
            nodes=tuple(sorted(lowered.nodes.values(), key=lambda n: n.id)),
            edges=tuple(sorted(set(lowered.edges), key=lambda e: (e.src, e.label, e.dst))),
            settings=lowered.settings,
            sources=tuple(sorted(loaded.sources)),
        )
    return CompileResult(graph, diags, dict(loaded.sources))


def compile_or_raise(
    paths: Sequence[str], env: Mapping[str, str] | None = None, fragments: Sequence[Fragment] = ()
) -> IRGraph:
    result = compile_config(paths, env, fragments)
    if result.graph is None:
        raise CompileError(result.diagnostics, result.sources)
    return result.graph
