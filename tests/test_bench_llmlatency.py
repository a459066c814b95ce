"""benchmarks/llmlatency.py's client against its stamping backend (a real process, real sockets).

The client takes each event's receive time from the kernel (SO_TIMESTAMPNS) and, in its steady
state, keeps only the events sent while every client was in a stream. A client that stopped
reading timestamps, or a window that kept everything, would make `make bench` report a number
that measures something else; this catches both without timing anything.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import llmlatency
from benchmarks.cpucost import wait_tcp

from .stubs import free_port

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"

INTERVAL = 0.005  # a stream lasts 100 x 5 ms


@pytest.fixture
def stamping() -> Iterator[int]:
    port = free_port()
    backend = subprocess.Popen(
        [
            sys.executable,
            str(BENCH / "llmlatency.py"),
            "--serve-stamping",
            str(port),
            "--token-delay",
            str(INTERVAL),
        ]
    )
    try:
        wait_tcp(port)
        yield port
    finally:
        backend.terminate()
        backend.wait(10)


def test_streams_together_every_event_is_timed_by_the_kernel(stamping: int) -> None:
    delays = llmlatency.latencies(stamping, "/v1/messages", llmlatency.ANTHROPIC_BODY, 3, True, INTERVAL)
    assert len(delays) == 3 * llmlatency.TOKENS
    # Receive (kernel, CLOCK_REALTIME) minus send (the backend's CLOCK_REALTIME stamp).
    assert delays == sorted(delays) and delays[0] >= 0


def test_steady_state_keeps_the_events_sent_while_every_client_streams(stamping: int) -> None:
    delays = llmlatency.latencies(stamping, "/v1/messages", llmlatency.ANTHROPIC_BODY, 3, False, INTERVAL)
    # 3 clients x 3 streams back to back (_STREAMS_PER_CLIENT), the second and third client starting a third and two
    # thirds of a stream later: the ramps at both ends are left out.
    assert 0 < len(delays) < 3 * llmlatency._STREAMS_PER_CLIENT * llmlatency.TOKENS
    assert delays[0] >= 0
