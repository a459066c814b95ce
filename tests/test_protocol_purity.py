"""Protocol adapters are pure (STYLE.md practice 1): they import no I/O, clock or event loop.

Every module in runtime/protocols/ is parsed and its imports checked, so a stray `import time`
or `anyio` fails here before it becomes a hidden dependency of the parser swap.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROTOCOLS = Path(__file__).resolve().parent.parent / "runtime" / "protocols"
FORBIDDEN = {
    "anyio",
    "socket",
    "ssl",
    "time",
    "asyncio",
    "trio",
    "uvloop",
    "select",
    "selectors",
    "threading",
}
# Relative imports may reach these runtime modules only (the event vocabulary).
ALLOWED_RUNTIME = {"events"}


def _imports(path: Path) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append((node.level, node.module or ""))
    return out


MODULES = sorted(PROTOCOLS.glob("*.py"))


def test_there_are_protocol_modules() -> None:
    assert any(p.name == "http1.py" for p in MODULES)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_protocol_module_imports_nothing_impure(path: Path) -> None:
    for level, module in _imports(path):
        top = module.split(".")[0]
        if level == 0:
            assert top not in FORBIDDEN, f"{path.name} imports {module}"
            assert not module.startswith("a3s_gateway"), f"{path.name} imports {module}; use relative imports"
        elif level == 2:  # from ..x import: only the event vocabulary
            assert top in ALLOWED_RUNTIME, f"{path.name} imports runtime.{module}"
        else:
            assert level == 1, f"{path.name} reaches outside runtime/ ({'.' * level}{module})"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_parser_type_in_the_public_api(path: Path) -> None:
    """h11 must stay behind the adapter: nothing named in __all__ comes from it."""
    if path.name == "__init__.py":
        return
    module = __import__(f"a3s_gateway.runtime.protocols.{path.stem}", fromlist=["__all__"])
    for name in getattr(module, "__all__", []):
        assert getattr(module, name).__module__.startswith("a3s_gateway."), name
