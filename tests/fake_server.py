"""What the fake API servers (tests/kube_api.py, tests/docker_engine.py) share: a store under one
condition, the requests they saw, and cutting their open streams."""

from __future__ import annotations

import threading

__all__ = ["FakeState"]


class FakeState:
    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.generation = 0  # bumped by cut_streams(): open streams end abruptly
        self.requests: list[str] = []  # "LIST services ns=*", "GET /events" ...

    def cut_streams(self) -> None:
        """Every open stream (a watch, the events) ends without its last chunk."""
        with self.lock:
            self.generation += 1
            self.lock.notify_all()

    def seen(self, request: str) -> None:
        with self.lock:
            self.requests.append(request)

    def count(self, prefix: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.startswith(prefix))
