"""Import rules between the layers (STYLE.md): checked by reading each module's imports.

- compiler/ never imports runtime/ (it reads kind config models through stdlib.registry only);
- stdlib/ kinds use runtime/api, errors, events, clock and their own helpers, never the socket
  machinery nor another kind's module;
- only runtime/gateway.py and runtime/workers.py name an event-loop implementation.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOCKET_MACHINERY = {
    "connection", "listener", "upstream", "protocols", "gateway", "graph", "workers", "cli", "reload", "watch",
    "pipeline", "tls",
}  # fmt: skip
LOOP_NAMES = {"asyncio", "uvloop", "trio"}
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
        if parts[0] == "runtime" and len(parts) > 1:
            assert parts[1] not in SOCKET_MACHINERY, f"{rel} imports runtime internals: {target}"
        # A module may import helpers, but never another kind's module (one that registers a kind).
        if parts[0] == "stdlib" and len(parts) > 2 and parts[2] != rel.stem:
            assert not _registers_a_kind(ROOT.joinpath(*parts[:3]).with_suffix(".py")), (
                f"{rel} imports another kind's module {target}"
            )


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
