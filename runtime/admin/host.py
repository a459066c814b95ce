"""What the admin API needs from the gateway that serves it.

A protocol, so the API never imports the Gateway (the Gateway builds the graphs that hold the
API's handlers) and a graph built without a gateway (tests, tools) still answers, with less.
"""

from __future__ import annotations

from typing import Any, Protocol

from ...compiler.diff import GraphDiff
from ..observe.hub import LiveFeed


class AdminHost(Protocol):
    def health(self) -> dict[str, Any]:
        """The gateway's lifecycle state, generation, reload count and entrypoint statistics."""

    async def reload_all(self) -> GraphDiff:
        """Re-read the configuration files, as SIGHUP does, in every process that serves them
        (under `run --workers N`, the supervisor compiles them once and hands the graph to every
        worker). Raises `CompileError` on a bad config (the running graph keeps serving
        everywhere), `LifecycleError` when the gateway cannot reload now."""

    def live_feed(self, events: frozenset[str] | None = None) -> LiveFeed:
        """A new watcher of the live feed: state changes, and a sample once per second."""
