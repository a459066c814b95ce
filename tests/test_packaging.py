"""The distribution installs exactly one import package, `a3s_gateway`, with every sub-package."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_FOLDERS = ("compiler", "runtime", "stdlib")


def _declared() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(data["tool"]["setuptools"]["packages"])


def test_every_source_package_is_listed() -> None:
    found = {
        "a3s_gateway." + ".".join(init.parent.relative_to(ROOT).parts)
        for folder in SOURCE_FOLDERS
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert found == _declared(), f"pyproject packages out of date: missing {found - _declared()}"


def test_no_generic_top_level_names() -> None:
    assert all(name.startswith("a3s_gateway.") for name in _declared())


def test_console_script() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["scripts"] == {"a3s-gateway": "a3s_gateway.runtime.cli:main"}


def test_every_imported_distribution_is_declared() -> None:
    """A library the package imports is a dependency of its own, not one a dependency brings."""
    import ast
    import importlib.metadata
    import re
    import sys

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = {_dist_name(req) for req in data["project"]["dependencies"]}
    # The optional runtime extras: uvloop, the OpenTelemetry SDK that span export imports, and the
    # ACME client (runtime/acme/).
    for extra in ("fast", "otel", "acme"):
        declared |= {_dist_name(req) for req in data["project"]["optional-dependencies"][extra]}
    providers = importlib.metadata.packages_distributions()
    missing: dict[str, str] = {}
    for folder in SOURCE_FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    tops = [alias.name.split(".")[0] for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    tops = [node.module.split(".")[0]]
                else:
                    continue
                for top in tops:
                    if top in sys.stdlib_module_names or top == "a3s_gateway":
                        continue
                    dists = {re.sub(r"[-_.]+", "-", d).lower() for d in providers.get(top, [top])}
                    if not dists & declared:
                        missing[top] = str(path.relative_to(ROOT))
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def _dist_name(requirement: str) -> str:
    import re

    name = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()
