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
