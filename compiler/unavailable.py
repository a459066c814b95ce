"""Keys that validate but have no runtime yet: setting one is a compile error, never a silent no-op.

The compiled graph is what runs, so a key the runtime does not read must not compile to nothing.
Each entry names a key path in the merged tree (`*` stands for a block label; a list, such as
`servers`, is looked into element by element) and the values that mean "not used" (the schema's
default, or an explicit off). A key set to anything else is an error at its own file:line:col.
A block path (`tcp_routers`) covers every key inside it.

tests/compiler/test_config_keys.py walks the schema and checks that every key is either read by
the runtime (its list there) or listed here, so a new key cannot be silently ignored. When a
feature lands, its entry moves from here to that list.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .diagnostics import Diagnostics

if TYPE_CHECKING:  # merge.py reads the files: a running gateway does not load it
    from .merge import SpanMap

__all__ = ["UNAVAILABLE", "Unavailable", "check_unavailable", "is_unavailable"]

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Unavailable:
    path: str  # e.g. "entrypoints.*.tcp_allowed_ips"
    what: str  # what is missing, e.g. "TCP/UDP entrypoints ... are not served"
    unused: tuple[Any, ...] = (None,)  # values that leave the feature off
    hint: str | None = None

    def refuses(self, value: Any) -> bool:
        return not any(value == unused and type(value) is type(unused) for unused in self.unused)


UNAVAILABLE: tuple[Unavailable, ...] = (
    Unavailable(
        "services.*.revisions.servers.address",
        "revisions of TCP services are not served",
        hint="HTTP backends are given by url",
    ),
)


def is_unavailable(path: str) -> bool:
    """Whether the key (or block) at `path` is not available yet: any value but an unused one is refused."""
    return any(path == u.path or path.startswith(u.path + ".") for u in UNAVAILABLE)


def check_unavailable(tree: Mapping[str, Any], spans: SpanMap, diags: Diagnostics) -> None:
    """An error at every key of UNAVAILABLE that the configuration sets to a value in use."""
    for entry in UNAVAILABLE:
        for path, value in _find(tree, tuple(entry.path.split("."))):
            if entry.refuses(value):
                key = ".".join(str(p) for p in path if not isinstance(p, int))
                diags.error(
                    f"'{key}' is not available yet: {entry.what} in this version",
                    spans.find(path),
                    hint=entry.hint,
                    code="unavailable",
                )


def _find(value: Any, pattern: tuple[str, ...], path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """The (path, value) pairs of the tree that `pattern` names; lists are looked into."""
    if not pattern:
        yield path, value
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from _find(item, pattern, (*path, index))
        return
    if not isinstance(value, Mapping):
        return
    head, rest = pattern[0], pattern[1:]
    keys = list(value) if head == "*" else [head] if head in value else []
    for key in keys:
        yield from _find(value[key], rest, (*path, key))
