"""Import rules between the layers (STYLE.md): checked by reading each module's imports.

- compiler/ never imports runtime/ (it reads kind config models through stdlib.registry only);
- stdlib/ kinds use runtime/api, errors, events, clock and their own helpers, never the socket
  machinery nor another kind's module; and so does everything they import, however indirectly
  (a helper, a package `__init__`, a compiler module): the rule holds for the import closure;
- only runtime/gateway.py and runtime/workers.py name an event-loop implementation.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOOP_NAMES = {"asyncio", "uvloop", "trio"}
# The contract node kinds program against (runtime/api.py and the modules it names).
CONTRACT = {"runtime", "runtime.api", "runtime.errors", "runtime.events", "runtime.clock"}
PACKAGES = {"compiler", "runtime", "stdlib"}
# The launcher, and the asyncio-native socket stream only the launcher selects.
LOOP_OWNERS = {"runtime/gateway.py", "runtime/workers.py", "runtime/asyncio_stream.py"}


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(level, dotted module) for every import; relative imports keep their level."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield 0, alias.name
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level and not module:
                for alias in node.names:
                    yield node.level, alias.name
            else:
                yield node.level, module


def _resolve(path: Path, level: int, module: str) -> str:
    """The import as a path-like name relative to the repo root, e.g. 'runtime.api'."""
    if level == 0:
        return module.removeprefix("a3s_gateway.")
    package = list(path.relative_to(ROOT).parent.parts)
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, module] if module else base)


def _registers_a_kind(path: Path) -> bool:
    return path.exists() and any(line.startswith("@register(") for line in path.read_text().splitlines())


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _module_path(name: str) -> Path | None:
    """The file of dotted module `name` ('stdlib.scalers' is its package's __init__.py)."""
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _direct_imports(name: str) -> frozenset[str]:
    """The project modules that importing `name` runs at once: each imported module, the
    packages above it (their __init__ runs first) and submodules named by `from pkg import x`."""
    path = _module_path(name)
    assert path is not None, name
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name.removeprefix("a3s_gateway.") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(path, node.level, node.module or "")
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            if parts[0] not in PACKAGES:
                continue
            for end in range(1, len(parts) + 1):
                prefix = ".".join(parts[:end])
                if _module_path(prefix) is not None:
                    found.add(prefix)
    found.discard(name)
    return frozenset(found)


def _import_closure(name: str) -> dict[str, str]:
    """Every project module importing `name` pulls in, each mapped to the module importing it."""
    parents: dict[str, str] = {}
    pending = [name]
    while pending:
        current = pending.pop()
        for module in sorted(_direct_imports(current)):
            if module != name and module not in parents:
                parents[module] = current
                pending.append(module)
    return parents


def _chain(parents: dict[str, str], module: str) -> str:
    links = [module]
    while links[-1] in parents:
        links.append(parents[links[-1]])
    return " <- ".join(links)


def _is_kind(module: str) -> bool:
    path = _module_path(module)
    return module.startswith("stdlib.") and path is not None and _registers_a_kind(path)


@pytest.mark.parametrize("path", _modules("compiler"), ids=lambda p: str(p.relative_to(ROOT)))
def test_compiler_never_imports_runtime(path: Path) -> None:
    for level, module in _imports(path):
        target = _resolve(path, level, module)
        assert not target.startswith("runtime"), f"{path.relative_to(ROOT)} imports {target}"


@pytest.mark.parametrize("path", _modules("stdlib"), ids=lambda p: str(p.relative_to(ROOT)))
def test_stdlib_kinds_stay_in_their_lane(path: Path) -> None:
    rel = path.relative_to(ROOT)
    for level, module in _imports(path):
        target = _resolve(path, level, module)
        parts = target.split(".")
        if parts[0] == "runtime":
            assert ".".join(parts[:2]) in CONTRACT, f"{rel} imports runtime internals: {target}"
        # A module may import helpers, but never another kind's module (one that registers a kind).
        if parts[0] == "stdlib" and len(parts) > 2 and parts[2] != rel.stem:
            assert not _registers_a_kind(ROOT.joinpath(*parts[:3]).with_suffix(".py")), (
                f"{rel} imports another kind's module {target}"
            )


@pytest.mark.parametrize("path", _modules("stdlib"), ids=lambda p: str(p.relative_to(ROOT)))
def test_what_a_stdlib_module_pulls_in_stays_in_the_lane_too(path: Path) -> None:
    """The rule above over the import closure: no way round the contract through a helper."""
    name = _module_name(path)
    parents = _import_closure(name)
    for module in sorted(parents):
        if module.split(".")[0] == "runtime":
            assert module in CONTRACT, f"{name} pulls in runtime internals: {_chain(parents, module)}"
        assert not _is_kind(module), f"{name} pulls in another kind's module: {_chain(parents, module)}"


def test_the_closure_follows_helpers_packages_and_submodules() -> None:
    # What the closure is made of, on modules whose imports are known: a relative import of a
    # helper, the package __init__ above an import, and a submodule named in `from pkg import x`.
    closure = _import_closure("stdlib.scalers._front")
    assert {"stdlib.scalers._scaler", "stdlib.executors._base", "stdlib", "runtime.api"} <= set(closure)
    assert "runtime.clock" in _import_closure("runtime.api")
    assert _chain(closure, "stdlib.executors._base").startswith(
        "stdlib.executors._base <- stdlib.scalers._scaler <- "
    )
    assert "compiler.schema" in _direct_imports("compiler.keys")  # from . import schema


@pytest.mark.parametrize(
    "path",
    _modules("compiler") + _modules("runtime") + _modules("stdlib"),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_only_the_launcher_names_event_loops(path: Path) -> None:
    rel = str(path.relative_to(ROOT))
    if rel in LOOP_OWNERS:
        return
    for level, module in _imports(path):
        if level == 0:
            assert module.split(".")[0] not in LOOP_NAMES, f"{rel} imports {module}"


# What `compile --check` may load: the compiler and the kinds' declarations, never the runtime's
# I/O stack. Checked in a fresh interpreter, so the imports that modules pull in indirectly count.
# The kinds' contract (CONTRACT: plain data types, no I/O) is allowed: the declarations' shared
# helpers (stdlib/common/) are written against it.
COMPILE_MAY_LOAD = {f"a3s_gateway.{module}" for module in CONTRACT}
_COMPILE_EVERYTHING = """
import glob, json, logging, sys
from a3s_gateway.compiler import compile_config
from a3s_gateway.stdlib import registry
paths = sorted(glob.glob("examples/**/*.hcl", recursive=True) + glob.glob("tests/data/a3s_docs/*.hcl"))
for path in paths:
    compile_config([path], {"JWT_SECRET": "s3cret"})
declared = {c: registry.names(c) for c in ("middleware", "balancer", "executor")}
for category, names in declared.items():
    for name in names:
        registry.lookup(category, name).config.model_json_schema()
print(json.dumps({
    "paths": len(paths),
    "declared": declared,
    "loaded": sorted(m for m in sys.modules if m.split(".")[0] in {"anyio", "httpx", "h11", "h2", "wsproto", "redis"}
                     or m.startswith("a3s_gateway.runtime")),
    "httpx_level": logging.getLogger("httpx").level,
}))
"""


def test_compiling_loads_no_runtime_library_even_indirectly() -> None:
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _COMPILE_EVERYTHING], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["paths"] >= 10
    assert len(report["declared"]["middleware"]) >= 15 and "process" in report["declared"]["executor"]
    loaded = [m for m in report["loaded"] if m not in COMPILE_MAY_LOAD]
    assert loaded == [], f"compiling imported runtime libraries: {loaded}"
    assert report["httpx_level"] == 0  # compiling changes no logger either


def test_a_kinds_class_is_imported_when_the_runtime_asks_for_it() -> None:
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from a3s_gateway.stdlib import registry\n"
        "kind = registry.lookup('executor', 'process')\n"
        "assert 'a3s_gateway.stdlib.executors.process' not in sys.modules\n"
        "assert kind.impl.__name__ == 'ProcessExecutor' and kind.creates_replicas\n"
        "assert 'anyio' in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
