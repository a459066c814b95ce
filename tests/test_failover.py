"""Failover resolution: the first service along the chain with an available backend."""

from __future__ import annotations

from a3s_gateway.stdlib.services.failover import chain, resolve

FALLBACKS = {"llm": "backup", "backup": "hosted"}


def test_the_primary_wins_while_it_has_backends() -> None:
    assert resolve("llm", lambda s: True, FALLBACKS.get) == "llm"


def test_traffic_walks_the_chain() -> None:
    assert resolve("llm", lambda s: s == "backup", FALLBACKS.get) == "backup"
    assert resolve("llm", lambda s: s == "hosted", FALLBACKS.get) == "hosted"


def test_nothing_available_stays_with_the_primary() -> None:
    assert resolve("llm", lambda s: False, FALLBACKS.get) == "llm"
    assert resolve("solo", lambda s: False, FALLBACKS.get) == "solo"


def test_a_cycle_cannot_loop() -> None:
    cyclic = {"a": "b", "b": "c", "c": "a"}
    assert chain("a", cyclic.get) == ["a", "b", "c"]
    assert resolve("b", lambda s: False, cyclic.get) == "b"
