"""The key-value layout shared by the etcd and Redis providers: keys to a configuration fragment.

Traefik's KV layout (`traefik/http/routers/<name>/rule`) on our configuration's own key names,
under a root key (docs/providers.md has the table):

    a3s/http/routers/<name>/rule                         routers "<name>" { rule = ... }
    a3s/http/routers/<name>/middlewares/0                  middlewares = [...] (index per element)
    a3s/http/services/<name>/load_balancer/servers/0/url   servers { url = ... }
    a3s/http/middlewares/<name>/type                     middlewares "<name>" { type = ... }
    a3s/tcp/routers/<name>/...    a3s/udp/routers/<name>/...    a3s/tcp/services/<name>/...

Every value is text; the config models read `"true"`, `"30"` and `"5s"` as they read the HCL
values. Segments that are all digits index a list (`0`, `1`, ... without gaps). A key that does
not fit (outside the sections, a value where a map is, a gap in a list) or a value that is not
UTF-8 becomes a problem of the fragment at that key, never an exception.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...compiler.fragment import Fragment

__all__ = ["kv_fragment"]

_SECTIONS = {
    ("http", "routers"): "routers",
    ("http", "services"): "services",
    ("http", "middlewares"): "middlewares",
    ("tcp", "routers"): "tcp_routers",
    ("tcp", "services"): "services",
    ("tcp", "middlewares"): "middlewares",
    ("udp", "routers"): "udp_routers",
    ("udp", "services"): "services",
}
_EXAMPLE = "<root>/http/routers/<name>/rule"


class _Builder:
    def __init__(self, provider: str, root: str) -> None:
        self.provider = provider
        self.prefix = root.strip("/") + "/"
        self.tree: dict[str, Any] = {}
        self.origins: dict[tuple[str | int, ...], str] = {}
        self.problems: list[tuple[str, str]] = []

    def add(self, key: str, raw: bytes) -> None:
        origin = f"key {key}"
        parts = key[len(self.prefix) :].split("/") if key.startswith(self.prefix) else []
        section = _SECTIONS.get((parts[0], parts[1])) if len(parts) >= 2 else None
        if section is None or len(parts) < 4 or not all(parts[2:]):
            self.problems.append((origin, f"the key is outside the layout (expected {_EXAMPLE})"))
            return
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.problems.append((origin, f"the value is not UTF-8 text (byte {exc.start})"))
            return
        name, path = parts[2], parts[3:]
        node = self.tree.setdefault(section, {}).setdefault(name, {})
        if not isinstance(node, dict):
            return
        self.origins.setdefault((section, name), f"key {self.prefix}{'/'.join(parts[:3])}")
        for step in path[:-1]:
            child = node.setdefault(step, {})
            if not isinstance(child, dict):
                self.problems.append((origin, f"'{step}' holds a value; it cannot also hold keys"))
                return
            node = child
        if isinstance(node.get(path[-1]), dict):
            self.problems.append((origin, f"'{path[-1]}' holds keys; it cannot also hold a value"))
            return
        node[path[-1]] = value
        self.origins[(section, name, *_indexed(path))] = origin

    def fragment(self) -> Fragment:
        tree = {
            section: {n: _lists(b, self._gap) for n, b in objs.items()} for section, objs in self.tree.items()
        }
        return Fragment(self.provider, tree, self.origins, tuple(self.problems))

    def _gap(self, keys: list[str]) -> None:
        self.problems.append(
            (
                f"keys {self.prefix}...",
                f"list indexes {sorted(keys, key=int)} have a gap (0, 1, 2 ... expected)",
            )
        )


def _indexed(path: list[str]) -> list[str | int]:
    return [int(step) if step.isdigit() else step for step in path]


def _lists(value: Any, gap: Any) -> Any:
    """Maps whose keys are all digits become lists, in index order."""
    if not isinstance(value, dict):
        return value
    converted = {k: _lists(v, gap) for k, v in value.items()}
    if converted and all(k.isdigit() for k in converted):
        order = sorted(converted, key=int)
        if [int(k) for k in order] != list(range(len(order))):
            gap(order)
        return [converted[k] for k in order]
    return converted


def kv_fragment(
    provider: str,
    root: str,
    items: Iterable[tuple[bytes, bytes]],
    problems: Iterable[tuple[str, str]] = (),
) -> Fragment:
    """The fragment the `(key, value)` pairs under `root` describe (see the module docstring).

    `problems` are what the store itself found wrong, as (origin, message): a Redis key of a
    type other than a string, say; they are reported with the fragment's own."""
    builder = _Builder(provider, root)
    builder.problems.extend(problems)
    for raw_key, value in sorted(items):
        try:
            key = raw_key.decode("utf-8")
        except UnicodeDecodeError:
            shown = raw_key.decode("utf-8", errors="backslashreplace")
            builder.problems.append((f"key {shown}", "the key is not UTF-8 text"))
            continue
        builder.add(key, value)
    return builder.fragment()
