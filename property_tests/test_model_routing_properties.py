"""Properties of the model router's pure parts.

- Finding the model: for any JSON object, however it is spaced, `find_model` names the model
  `json.loads` sees, and renaming it in place gives exactly the object with only `model`
  changed. The top-level walk is hand-written around the C scanner; json.loads is the oracle.
- Resolution: aliases end or loop exactly as `alias_loop` says, and `ModelTable.route` picks an
  exact name before any glob and otherwise the first glob that matches, in order (fnmatchcase
  as the oracle).
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from a3s_gateway.stdlib.services.model_request import find_model, with_model
from a3s_gateway.stdlib.services.model_table import ModelTable, alias_loop, glob_error
from a3s_gateway.stdlib.services.schemas.model_router import ModelRoute

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
_keys = st.sampled_from(["model", "messages", "mode", "Model", "x", ""]) | st.text(max_size=6)
_objects = st.dictionaries(_keys, _json, max_size=6)
_spacing = st.sampled_from([None, 0, 2]).flatmap(
    lambda indent: st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")]).map(
        lambda sep: (indent, sep)
    )
)


@given(_objects, _spacing, st.booleans(), st.text(max_size=12))
def test_the_model_found_is_the_one_json_loads_sees(
    obj: dict[str, Any], spacing: tuple[int | None, tuple[str, str]], ascii_only: bool, new: str
) -> None:
    indent, separators = spacing
    text = " " + json.dumps(obj, indent=indent, separators=separators, ensure_ascii=ascii_only) + "\n"
    found = find_model(text)
    parsed = json.loads(text)
    if "model" not in parsed:
        assert found is None
        assert json.loads(with_model(text, None, new)) == {"model": new, **parsed}
        return
    assert found is not None
    value, start, end = found
    assert value == parsed["model"]
    assert json.loads(text[start:end]) == value
    renamed = json.loads(with_model(text, (start, end), new))
    assert renamed == {**parsed, "model": new}


_names = st.sampled_from(["a", "b", "c", "d", "gpt-4o", "gpt-4o-mini", "claude-x"])


@given(st.dictionaries(_names, _names, max_size=6), _names)
def test_aliases_end_or_loop_as_alias_loop_says(aliases: dict[str, str], start: str) -> None:
    loop = alias_loop(aliases, start)
    seen = [start]
    current = start
    while current in aliases and aliases[current] not in seen:
        current = aliases[current]
        seen.append(current)
    assert (loop is not None) == (current in aliases)
    if loop is None:
        assert ModelTable({}, aliases).resolve(start) == current


_pattern = st.text(alphabet="ab-*?[]!4o", min_size=1, max_size=6).filter(lambda p: glob_error(p) is None)


@given(st.lists(_pattern, max_size=5, unique=True), st.text(alphabet="ab-4o", max_size=6))
def test_exact_names_first_then_globs_in_order(patterns: list[str], name: str) -> None:
    routes = {p: ModelRoute(service=f"s{i}") for i, p in enumerate(patterns)}
    found = ModelTable(routes, {}).route(name)
    exact = [p for p in patterns if p == name and not set(p) & set("*?[")]
    globs = [p for p in patterns if set(p) & set("*?[") and fnmatch.fnmatchcase(name, p)]
    expected = (exact or globs or [None])[0]
    assert (found[0] if found is not None else None) == expected
