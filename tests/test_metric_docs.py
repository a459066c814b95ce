"""docs/observability.md's metric list is generated from the code (`make docs`) and fresh."""

from __future__ import annotations

from pathlib import Path

from a3s_gateway.runtime.observe.metric_docs import render_metric_list, with_metric_list
from a3s_gateway.runtime.observe.metric_names import SERIES

PAGE = Path(__file__).resolve().parent.parent / "docs" / "observability.md"


def test_the_metric_list_in_the_docs_is_fresh() -> None:
    page = PAGE.read_text()
    assert with_metric_list(page) == page, "docs/observability.md's metric list is stale: run `make docs`"


def test_the_list_names_every_series_once() -> None:
    text = render_metric_list()
    for series in SERIES:
        assert text.count(f"| `{series.name}` |") == 1
    assert len({s.name for s in SERIES}) == len(SERIES)
    assert all(s.name.startswith("a3s_gateway_") for s in SERIES)
    assert all(s.name.endswith("_total") == (s.kind == "counter") for s in SERIES)
