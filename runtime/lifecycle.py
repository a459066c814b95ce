"""The Gateway lifecycle: a transition table.

Theory of operation
-------------------
A `Gateway` is created with a configuration and does nothing until `start()`. Starting compiles
the configuration (when given as paths), builds the first graph generation and binds every
listener; if any of that fails the gateway goes straight to Stopped, having closed whatever it
had opened, and the error propagates. Once Running it serves traffic until `shutdown()`.

A reload moves Running to Reloading and always comes back to Running: either the new graph was
swapped in (RELOADED) or it was rejected (RELOAD_FAILED: a compile error, a listener that would
not bind) and the old graph kept serving, untouched. Reloads and shutdowns are serialised by the
gateway's lock, so SHUTDOWN never arrives while Reloading: `shutdown()` waits for the reload
to finish and then shuts a Running gateway down.

Shutdown moves to Stopping: listeners stop accepting, in-flight requests and streams drain for
up to `drain_timeout`, state is closed, then STOPPED. Shutdown is idempotent: asking again while
Stopping or Stopped changes nothing, and shutting down a gateway that never started goes straight
to Stopped. Stopped is final: a gateway is not restarted, a new one is created.

Every pair absent from the table is a programming error (`LifecycleError`) that leaves the
state as it was; `property_tests/test_gateway_lifecycle.py` visits every pair.
"""

from __future__ import annotations

import enum

__all__ = ["TRANSITIONS", "Event", "Lifecycle", "LifecycleError", "State"]


class State(enum.Enum):
    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    RELOADING = "reloading"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Event(enum.Enum):
    START = "start"
    STARTED = "started"
    START_FAILED = "start_failed"
    RELOAD = "reload"
    RELOADED = "reloaded"
    RELOAD_FAILED = "reload_failed"
    SHUTDOWN = "shutdown"
    STOPPED = "stopped"


S, E = State, Event

TRANSITIONS: dict[tuple[State, Event], State] = {
    (S.CREATED, E.START): S.STARTING,
    (S.CREATED, E.SHUTDOWN): S.STOPPED,
    (S.STARTING, E.STARTED): S.RUNNING,
    (S.STARTING, E.START_FAILED): S.STOPPED,
    (S.RUNNING, E.RELOAD): S.RELOADING,
    (S.RUNNING, E.SHUTDOWN): S.STOPPING,
    (S.RELOADING, E.RELOADED): S.RUNNING,
    (S.RELOADING, E.RELOAD_FAILED): S.RUNNING,
    (S.STOPPING, E.SHUTDOWN): S.STOPPING,
    (S.STOPPING, E.STOPPED): S.STOPPED,
    (S.STOPPED, E.SHUTDOWN): S.STOPPED,
}
"""(state, event) -> next state. Anything else is a LifecycleError."""

SERVING = frozenset({S.RUNNING, S.RELOADING})
"""States in which listeners accept connections."""


class LifecycleError(RuntimeError):
    """An operation that makes no sense in the gateway's current state."""

    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"cannot {event.value} a gateway that is {state.value}")
        self.state = state
        self.event = event


class Lifecycle:
    """The current state, moved only through `fire`."""

    __slots__ = ("state",)

    def __init__(self, state: State = State.CREATED) -> None:
        self.state = state

    def fire(self, event: Event) -> State:
        """Apply `event`; raise LifecycleError (state unchanged) when the table has no entry."""
        nxt = TRANSITIONS.get((self.state, event))
        if nxt is None:
            raise LifecycleError(self.state, event)
        self.state = nxt
        return nxt

    def allows(self, event: Event) -> bool:
        return (self.state, event) in TRANSITIONS
