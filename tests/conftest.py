"""Shared fixtures: every async test runs on asyncio, asyncio+uvloop and trio."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest

_BACKENDS: list[Any] = [pytest.param(("asyncio", {}), id="asyncio")]
if importlib.util.find_spec("uvloop") is not None:
    _BACKENDS.append(pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"))
_BACKENDS.append(pytest.param(("trio", {}), id="trio"))


@pytest.fixture(params=_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


# The HTTP/1.1 integration tests run with both HTTP/1.1 adapters: protocols/http1.py (h11, the
# reference) and protocols/http1_fast.py (llhttp, the default). Every other test runs with the
# default only.
_BOTH_HTTP1 = {
    "test_client_framing",
    "test_dataplane",
    "test_request_garbage",
    "test_request_target",
    "test_upstream_reuse",
    "test_websocket_proxy",
    "test_queue_tunnels",
    "test_forwarded_headers",
    "test_pipeline",
    "test_h2c_modes",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if (
        "http1_adapter" in metafunc.fixturenames
        and metafunc.module.__name__.rpartition(".")[2] in _BOTH_HTTP1
    ):
        metafunc.parametrize("http1_adapter", ["h11", "fast"], indirect=True)


@pytest.fixture(autouse=True)
def http1_adapter(request: pytest.FixtureRequest) -> Iterator[str]:
    """The HTTP/1.1 adapter connections opened by the test speak (see _BOTH_HTTP1)."""
    from a3s_gateway.runtime.protocols.http1_choice import HTTP1

    previous = HTTP1.name
    HTTP1.use(getattr(request, "param", previous))
    try:
        yield HTTP1.name
    finally:
        HTTP1.use(previous)


@pytest.fixture(scope="module")
def peers() -> Iterator[Any]:
    """The WebSocket peers' child process (tests/ws_peer_process.py), one per test module."""
    from .ws_peer_process import Peers

    p = Peers()
    yield p
    p.stop()
