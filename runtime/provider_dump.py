"""`a3s-gateway providers dump --config PATH... --out DIR`: save what the providers give now.

Each provider the configuration names (its settings are read even when the rest does not
compile yet, as when a file references a provider's object) is run until it publishes its first fragment (or its
source is lost, or `--timeout` passes), and the fragments are written to DIR, one
`<provider>.fragment.json` each (compiler/fragment.py). `compile --check --provider-snapshot DIR`
and `graph --dot --provider-snapshot DIR` then compile the files with them, so CI can check what
the providers would produce without reaching them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio

from ..compiler import load_settings, render_text
from ..compiler.fragment import Fragment, write_snapshot
from ..stdlib import registry
from ..stdlib.base import BuildContext

__all__ = ["dump_command", "first_fragment"]


class _First:
    """Updates that keep the first fragment and remember why there is none yet."""

    def __init__(self) -> None:
        self.fragment: Fragment | None = None
        self.reason = "no answer"
        self.done = anyio.Event()

    async def publish(self, fragment: Fragment) -> None:
        self.fragment = fragment
        self.done.set()

    def lost(self, reason: str, retry_in: float) -> None:
        self.reason = reason
        self.done.set()


async def first_fragment(name: str, options: dict[str, Any], timeout: float) -> Fragment | str:
    """The first fragment provider `name` publishes, or why there was none."""
    kind = registry.lookup("provider", name)
    assert kind is not None
    provider = kind.impl(
        kind.config.model_validate(options), BuildContext(node_id=f"provider:{name}", name=name)
    )
    first = _First()
    async with anyio.create_task_group() as tg:
        tg.start_soon(provider.run, first)
        with anyio.move_on_after(timeout):
            await first.done.wait()
        tg.cancel_scope.cancel()
    return first.fragment if first.fragment is not None else f"provider {name}: {first.reason}"


def dump_command(args: argparse.Namespace, *, color: bool = False) -> int:
    settings, diags, sources = load_settings(args.config)
    if settings is None:
        print(render_text(diags.errors, sources, color=color), file=sys.stderr)
        return 1
    kinds = settings.providers.kinds if settings.providers else {}
    if not kinds:
        print("a3s-gateway providers dump: the configuration names no provider to dump", file=sys.stderr)
        return 1

    async def dump_all() -> list[Fragment | str]:
        return [
            await first_fragment(name, dict(options), args.timeout) for name, options in sorted(kinds.items())
        ]

    found = anyio.run(dump_all)
    fragments = [f for f in found if isinstance(f, Fragment)]
    for problem in (f for f in found if isinstance(f, str)):
        print(f"a3s-gateway providers dump: {problem}", file=sys.stderr)
    for path in write_snapshot(args.out, fragments):
        print(path)
    return 0 if len(fragments) == len(found) else 1
