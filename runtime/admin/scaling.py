"""Scalers and rollouts, as their own snapshots describe them (stdlib/scalers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .host import AdminHost

if TYPE_CHECKING:
    from ..graph import LiveGraph


def scalers(graph: LiveGraph, _host: AdminHost | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, service in sorted(graph.services.items()):
        front: Any = service.front
        if front is None:
            continue
        if front.scaler is not None:
            out.append({"name": name, "service": name, "revision": None, **front.scaler.snapshot()})
        for revision, scaler in sorted(front.revision_scalers.items()):
            out.append(
                {"name": f"{name}/{revision}", "service": name, "revision": revision, **scaler.snapshot()}
            )
    return out


def rollouts(graph: LiveGraph, _host: AdminHost | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, service in sorted(graph.services.items()):
        front: Any = service.front
        if front is None or front.revisions is None:
            continue
        snapshot = front.revisions.snapshot()
        if snapshot.get("rollout") is None:
            continue
        out.append({"service": name, **snapshot})
    return out
