"""Compiling runs with the cyclic garbage collector paused (compiler/collector.py): a large
compile's collections were a fifth of its CPU time. The pause nests, is shared by threads, and
gives the collector back only as the compile found it."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from a3s_gateway.compiler import compile_config
from a3s_gateway.compiler.collector import collector_paused


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generations the collector collected while the test ran."""
    seen: list[int] = []

    def record(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(record)
    try:
        yield seen
    finally:
        gc.callbacks.remove(record)


def _routers(n: int) -> str:
    routers = "".join(
        f'routers "r{i}" {{\n  rule    = "Host(`h{i}.example.com`) && PathPrefix(`/v{i}`)"\n  service = "app"\n}}\n'
        for i in range(n)
    )
    return (
        'entrypoints "web" { address = "127.0.0.1:8080" }\n'
        'services "app" {\n  load_balancer { servers = [{ url = "http://127.0.0.1:9" }] }\n}\n' + routers
    )


def test_a_compile_runs_no_collection(tmp_path: Path, collections: list[int]) -> None:
    path = tmp_path / "gw.hcl"
    path.write_text(_routers(300))
    gc.enable()
    result = compile_config([str(path)])
    assert result.graph is not None
    # Without the pause, some 200 passes; with it, at most the one the collector's counter asks for
    # as it resumes.
    assert len(collections) <= 1, collections
    assert gc.isenabled()


def test_a_compile_that_fails_gives_the_collector_back(tmp_path: Path) -> None:
    path = tmp_path / "gw.hcl"
    path.write_text('routers "r" {\n  rule = "Host(`a`"\n  service = "nowhere"\n}\n')
    assert compile_config([str(path)]).graph is None
    assert gc.isenabled()


def test_pauses_nest_and_a_collector_turned_off_stays_off() -> None:
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_pause_in_another_thread_holds_until_both_end() -> None:
    entered, release = threading.Event(), threading.Event()

    def compile_in_a_thread() -> None:
        with collector_paused():
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=compile_in_a_thread)
    with collector_paused():
        thread.start()
        assert entered.wait(10)
    assert not gc.isenabled()  # the thread's pause is still on
    release.set()
    thread.join(10)
    assert gc.isenabled()
