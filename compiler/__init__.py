"""The compiler: configuration text in, a validated, immutable IR graph out.

    result = compile_config(["gateway.hcl"])
    if result.graph is None:
        print(render_text(result.diagnostics, result.sources))

No sockets, no event loop, no clock: `compile --check` runs exactly this, so it accepts exactly
what `run` accepts.

The names below load on first use (PEP 562): the IR, the diagnostics and the diff are small and
imported at once; the pipeline (`compile_config` and the rest, compiler/pipeline.py) pulls in the
HCL reader, the merge, the lowering and the checks, which a process that only runs a graph
compiled elsewhere (a worker of `run --workers N`) never needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .diagnostics import CompileError, Diagnostic, Diagnostics, render_json, render_text
from .diff import GraphDiff, diff
from .ir import Edge, IRGraph, Node
from .source import SourceFile, Span

if TYPE_CHECKING:
    from .pipeline import (
        CompileResult,
        LoadedFiles,
        compile_config,
        compile_loaded,
        compile_or_raise,
        load_files,
        load_settings,
    )

__all__ = [
    "CompileError",
    "CompileResult",
    "Diagnostic",
    "Diagnostics",
    "Edge",
    "GraphDiff",
    "IRGraph",
    "LoadedFiles",
    "Node",
    "SourceFile",
    "Span",
    "compile_config",
    "compile_loaded",
    "compile_or_raise",
    "diff",
    "load_files",
    "load_settings",
    "render_json",
    "render_text",
]

# Loaded on first use: name -> the module defining it.
_LAZY = {
    "CompileResult": ".pipeline",
    "LoadedFiles": ".pipeline",
    "compile_config": ".pipeline",
    "compile_loaded": ".pipeline",
    "compile_or_raise": ".pipeline",
    "load_files": ".pipeline",
    "load_settings": ".pipeline",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # once: the next lookup is a plain attribute
    return value
