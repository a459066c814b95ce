"""The reload plan: which node ids were added, removed, changed or left unchanged.

Pure data, no side effects. The runtime keeps the live state (buckets, breakers, pools, health)
of every unchanged node, rebuilds changed and added ones, closes removed ones, and then swaps the
new graph in with one reference assignment.
"""

from __future__ import annotations

from dataclasses import dataclass

from .ir import IRGraph


@dataclass(frozen=True, slots=True)
class GraphDiff:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]
    settings_changed: bool = False

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.settings_changed)

    def summary(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.removed)} removed, "
            f"{len(self.changed)} changed, {len(self.unchanged)} unchanged"
        )


def diff(old: IRGraph, new: IRGraph) -> GraphDiff:
    old_fp = {n.id: n.fingerprint for n in old.nodes}
    new_fp = {n.id: n.fingerprint for n in new.nodes}
    return GraphDiff(
        added=tuple(sorted(new_fp.keys() - old_fp.keys())),
        removed=tuple(sorted(old_fp.keys() - new_fp.keys())),
        changed=tuple(sorted(i for i in new_fp.keys() & old_fp.keys() if new_fp[i] != old_fp[i])),
        unchanged=tuple(sorted(i for i in new_fp.keys() & old_fp.keys() if new_fp[i] == old_fp[i])),
        settings_changed=old.settings != new.settings,
    )
