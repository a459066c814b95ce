"""Every example compiles cleanly; every docs snippet parses (and, if incomplete, says what is missing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from a3s_gateway.compiler import compile_config
from a3s_gateway.compiler.diagnostics import Diagnostics
from a3s_gateway.compiler.fragment import read_snapshot

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.hcl"))
DOCS = sorted((ROOT / "tests/data/a3s_docs").glob("*.hcl"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_compiles(path: Path) -> None:
    # An example whose files name a provider's objects (`llm@dns`) compiles with the provider's
    # saved answer, as `compile --check --provider-snapshot examples/snapshots/<name>` does.
    snapshot = ROOT / "examples" / "snapshots" / path.stem
    fragments = read_snapshot(str(snapshot), Diagnostics()) if snapshot.is_dir() else []
    result = compile_config([str(path)], {}, fragments)
    assert result.graph is not None, [str(d.span) + " " + d.message for d in result.diagnostics]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_docs_snippet_has_no_syntax_errors(path: Path) -> None:
    result = compile_config([str(path)], {"JWT_SECRET": "s3cret"})
    assert not [d for d in result.diagnostics if d.code in ("syntax", "literal")]


def test_full_docs_example_names_what_is_missing() -> None:
    path = ROOT / "tests/data/a3s_docs/02-full-example-llm-rollout.hcl"
    result = compile_config([str(path)], {"JWT_SECRET": "s3cret"})
    messages = {
        (d.span.line if d.span else 0, d.message) for d in result.diagnostics if d.severity == "error"
    }
    assert (27, "service 'llm-service': mirror target service 'llm-canary' is not defined") in messages
    assert any(line == 41 and "rollout from 'v1' to 'v2' needs revisions" in msg for line, msg in messages)


def test_examples_cover_the_docs_scenarios() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {"quickstart", "safe-rollout", "tcp-sni", "mirroring", "scale-to-zero"} <= names
