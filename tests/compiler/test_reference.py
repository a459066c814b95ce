"""docs/reference.md is generated from the models: it must match what they say now."""

from __future__ import annotations

from pathlib import Path

from a3s_gateway.compiler.reference import render_reference

ROOT = Path(__file__).resolve().parents[2]


def test_reference_is_up_to_date() -> None:
    current = (ROOT / "docs" / "reference.md").read_text()
    assert current == render_reference(), "docs/reference.md is stale: run `make docs`"


def test_reference_covers_every_middleware() -> None:
    text = render_reference()
    for name in ("jwt", "api-key", "basic-auth", "forward-auth", "rate-limit", "rate-limit-redis", "cors",
                 "headers", "strip-prefix", "body-limit", "retry", "circuit-breaker", "ip-allow", "compress",
                 "tcp-filter"):  # fmt: skip
        assert f"### `{name}`" in text


def test_reference_has_a_section_for_every_block_of_the_schema() -> None:
    # The blocks are walked from the models: a new block (access_log { filters }) cannot be left out.
    text = render_reference()
    for heading in (
        "access_log",
        "access_log.filters",
        "entrypoints.<name>.tls.certificates",
        "routers.<name>.tls",
    ):
        assert f"### `{heading}`\n" in text
