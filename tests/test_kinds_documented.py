"""Every registered kind is documented and tested (STYLE.md practice 9).

A kind's module docstring is its reference documentation, so it must exist and say something.
Its test lives in `tests/<package>/test_<module>.py` (one file per kind, as the middlewares do),
`tests/test_<module>.py`, `tests/test_<category>_<module>.py`, or a file covering the whole
category, `tests/test_<package>.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from a3s_gateway.stdlib import registry

TESTS = Path(__file__).resolve().parent
KINDS = registry.kinds()


def _where(kind: registry.Kind) -> tuple[str, str]:
    """(stdlib sub-package, module name) of the kind's implementation."""
    parts = kind.impl.__module__.split(".")
    return parts[-2], parts[-1]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: f"{k.category}:{k.name}")
def test_kind_has_a_docstring(kind: registry.Kind) -> None:
    assert len(kind.doc) >= 40, f"{kind.impl.__module__} needs a module docstring (its reference doc)"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: f"{k.category}:{k.name}")
def test_kind_has_a_test_file(kind: registry.Kind) -> None:
    package, module = _where(kind)
    candidates = [
        TESTS / package / f"test_{module}.py",
        TESTS / f"test_{module}.py",
        TESTS / f"test_{kind.category}_{module}.py",
        TESTS / f"test_{package}.py",
    ]
    assert any(path.is_file() for path in candidates), (
        f"{kind.category} {kind.name!r} has no test file; expected one of "
        + ", ".join(str(p.relative_to(TESTS.parent)) for p in candidates)
    )


def test_the_registry_is_not_empty() -> None:
    assert registry.names("middleware"), "no middleware registered: is stdlib/middlewares importable?"


def test_every_implemented_kind_is_declared_for_the_compiler() -> None:
    """The compiler sees only declarations (stdlib/<category>/schemas/): a kind implemented and
    registered without one would compile as an unknown type. Compare, in a fresh interpreter,
    what the declarations alone name with what the implementations register."""
    import json
    import subprocess
    import sys

    script = (
        "import json\n"
        "from a3s_gateway.stdlib import registry\n"
        "cats = ('middleware', 'balancer', 'executor', 'provider', 'service')\n"
        "declared = {c: registry.names(c) for c in cats}\n"
        "registry.load_builtin_kinds()\n"
        "print(json.dumps([declared, {c: registry.names(c) for c in cats}]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    declared, implemented = json.loads(out.stdout)
    assert declared == implemented


def test_a_declared_kind_is_registered_by_its_declared_module_only() -> None:
    with pytest.raises(RuntimeError, match=r"declared for a3s_gateway\.stdlib\.middlewares\.jwt"):
        registry.register("middleware", "jwt")(type("Impostor", (), {}))
    with pytest.raises(RuntimeError, match="no declaration"):
        registry.register("middleware", "never-declared")(type("Impostor", (), {}))
