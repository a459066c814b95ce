"""Hypothesis strategies for router rules, shared by the router index and route cache properties."""

from __future__ import annotations

from hypothesis import strategies as st

from a3s_gateway.compiler.rules import And, Matcher, Not, Or, Rule


def trees(leaves: st.SearchStrategy[Rule], max_leaves: int = 8) -> st.SearchStrategy[Rule]:
    """Rules over `leaves` joined by `!`, `&&` and `||`."""
    return st.recursive(
        leaves,
        lambda sub: st.one_of(st.builds(Not, sub), st.builds(And, sub, sub), st.builds(Or, sub, sub)),
        max_leaves=max_leaves,
    )


def leaf(name: str, values: list[str]) -> st.SearchStrategy[Rule]:
    """The one-argument matcher `name` with one of `values`."""
    return st.sampled_from(values).map(lambda v: Matcher(name, (v,)))
