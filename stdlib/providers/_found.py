"""What a provider's translator found: a config tree in the files' shape, where each object came
from, and what it could not read.

The translators (Ingress, IngressRoute, Docker labels, a3s-service.json) are pure functions that
fill one of these; the provider kind turns it into a fragment (compiler/fragment.py). Each object
is added with its origin (`Ingress default/web`), so a diagnostic about it names the source; bad
input is a problem at its origin, never an exception.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["Found", "as_dict", "dicts", "safe_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")


def as_dict(value: Any) -> dict[str, Any]:
    """`value` when it is a mapping (an object's field as the API sent it), else an empty one."""
    return value if isinstance(value, dict) else {}


def dicts(value: Any) -> list[dict[str, Any]]:
    """The mappings in `value` when it is a list (an object's list field as the API sent it)."""
    return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []


def safe_name(*parts: object) -> str:
    """A config name from parts (`default`, `web`, `api.example.com`): Traefik's normalisation,
    every run of characters other than letters, digits, `-` and `_` becoming one `-`."""
    return _UNSAFE.sub("-", "-".join(str(p) for p in parts if p not in (None, ""))).strip("-") or "default"


class Found:
    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}
        self.origins: dict[tuple[str | int, ...], str] = {}
        self.problems: list[tuple[str, str]] = []

    def add(self, section: str, name: str, body: dict[str, Any], origin: str) -> str:
        """Add `body` as `section.name` (a second object of that name gets a numbered suffix)."""
        objects = self.tree.setdefault(section, {})
        unique, n = name, 1
        while unique in objects:
            n += 1
            unique = f"{name}-{n}"
        objects[unique] = body
        self.origins[(section, unique)] = origin
        return unique

    def add_shared(self, section: str, name: str, body: dict[str, Any], origin: str) -> str:
        """`add`, unless an equal body is already there under `name` (or a numbered `name-<n>`):
        then that one's name, so that routes to the same backends share one service."""
        objects: dict[str, Any] = self.tree.get(section, {})
        for existing, other in objects.items():
            if other == body and (existing == name or re.fullmatch(rf"{re.escape(name)}-\d+", existing)):
                return existing
        return self.add(section, name, body, origin)

    def problem(self, origin: str, message: str) -> None:
        self.problems.append((origin, message))

    def routers(self) -> int:
        return sum(len(self.tree.get(s, {})) for s in ("routers", "tcp_routers", "udp_routers"))
