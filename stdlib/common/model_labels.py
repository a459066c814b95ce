"""Bounded `model` label values for the LLM metrics: a client must not grow the series.

A request's `model` is client data. As a label it is kept only when it is one of the names the
configuration writes down (a model block, an alias, an upstream model, an allowed-model or price
entry); a name that only a glob of the configuration matches is counted under that glob (so
`gpt-4o*` counts every `gpt-4o-...`), and anything else under `other`. The set of values is
therefore the configuration's names and globs plus one, however many names clients invent.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

__all__ = ["NO_KEY", "OTHER", "ModelLabels"]

OTHER = "other"
NO_KEY = "none"  # the `key` label of a request no key was known for (refused first, or no llm-keys)
_GLOB_CHARS = frozenset("*?[")
_CACHE_MAX = 4096  # distinct requested names remembered; past it the cache starts again


class ModelLabels:
    """The label value of a requested model name (see the module docstring)."""

    def __init__(self, names: Iterable[str]) -> None:
        self._exact: set[str] = set()
        self._globs: list[tuple[str, re.Pattern[str]]] = []
        for name in names:
            if _GLOB_CHARS.isdisjoint(name):
                self._exact.add(name)
            elif all(glob != name for glob, _ in self._globs):
                self._globs.append((name, re.compile(fnmatch.translate(name))))
        self._cache: dict[str, str] = {}

    def label(self, model: str | None) -> str:
        if model is None:
            return OTHER
        found = self._cache.get(model)
        if found is None:
            found = self._find(model)
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[model] = found
        return found

    def _find(self, model: str) -> str:
        if model in self._exact:
            return model
        for glob, pattern in self._globs:
            if pattern.match(model):
                return glob
        return OTHER
