"""Request priority classes, and a waiting line served highest class first, FIFO within a class.

The `priority` middleware puts a request's class in `request.state["priority"]` (a `Priority`);
whoever makes requests wait (the `queue` middleware, a scaler's cold-start buffer) reads it with
`priority_of` and keeps its waiters in a `ClassQueue`, so that the next one served is the oldest
of the highest class, and the one to shed under overload is the newest of the lowest. A request
nobody classified is `NORMAL`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from enum import IntEnum
from typing import Any, Generic, Literal, TypeVar

__all__ = [
    "PRIORITY",
    "PRIORITY_NAMES",
    "ClassQueue",
    "Priority",
    "PriorityName",
    "parse_priority",
    "priority_of",
]


class Priority(IntEnum):
    """Lower is more important: `min()` of two classes is the one served first."""

    CRITICAL = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3
    BEST_EFFORT = 4

    @property
    def label(self) -> str:
        """Its name in the configuration and in metric labels: "critical" ... "best_effort"."""
        return PRIORITY_NAMES[self]


PriorityName = Literal["critical", "high", "normal", "low", "best_effort"]
PRIORITY_NAMES: tuple[PriorityName, ...] = ("critical", "high", "normal", "low", "best_effort")

PRIORITY = "priority"
"""The `request.state` key of a request's class."""

# Header and claim values name a class loosely: "BestEffort", "best-effort", "BEST_EFFORT".
_BY_LOOSE_NAME = {name.replace("_", ""): Priority(i) for i, name in enumerate(PRIORITY_NAMES)}


def parse_priority(value: object) -> Priority | None:
    """The class `value` names (case, `-` and `_` ignored), or None when it names none."""
    if not isinstance(value, str):
        return None
    return _BY_LOOSE_NAME.get(value.strip().lower().replace("-", "").replace("_", ""))


def priority_of(state: dict[str, Any]) -> Priority:
    """A request's class from its `state` (NORMAL when no `priority` middleware classified it)."""
    found = state.get(PRIORITY)
    return found if isinstance(found, Priority) else Priority.NORMAL


T = TypeVar("T")


class ClassQueue(Generic[T]):
    """Waiters in one FIFO per class. `popleft` takes the oldest of the highest class present;
    `pop_newest(cls)` the latest arrival of a class (whom to shed: it has waited least)."""

    __slots__ = ("_lines", "_size")

    def __init__(self) -> None:
        self._lines: tuple[deque[T], ...] = tuple(deque() for _ in Priority)
        self._size = 0

    def append(self, item: T, priority: Priority = Priority.NORMAL) -> None:
        self._lines[priority].append(item)
        self._size += 1

    def popleft(self) -> T:
        for line in self._lines:
            if line:
                self._size -= 1
                return line.popleft()
        raise IndexError("pop from an empty ClassQueue")

    def peek(self) -> T | None:
        """The one `popleft` would take, left in place (None when empty)."""
        for line in self._lines:
            if line:
                return line[0]
        return None

    def lowest(self) -> Priority | None:
        """The least important class that has a waiter (None when empty)."""
        for priority in reversed(Priority):
            if self._lines[priority]:
                return priority
        return None

    def pop_newest(self, priority: Priority) -> T:
        self._size -= 1
        return self._lines[priority].pop()

    def remove(self, item: T) -> bool:
        """Take `item` out wherever it waits; False when it is not here."""
        for line in self._lines:
            try:
                line.remove(item)
            except ValueError:
                continue
            self._size -= 1
            return True
        return False

    def depths(self) -> tuple[int, ...]:
        """How many wait in each class, CRITICAL first."""
        return tuple(len(line) for line in self._lines)

    def clear(self) -> None:
        for line in self._lines:
            line.clear()
        self._size = 0

    def __contains__(self, item: object) -> bool:
        return any(item in line for line in self._lines)

    def __iter__(self) -> Iterator[T]:
        """In service order: highest class first, oldest first within it."""
        for line in self._lines:
            yield from line

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0
