"""A proxied exchange is freed by reference counting when it is over: the gateway's Request,
Response and upstream exchange form no reference cycle, so nothing hanging off them (an access
log entry, a metrics callback, the body) waits for the cycle collector, whose passes cost CPU in
proportion to what is left for them (docs/benchmarks.md, the access log's cost)."""

from __future__ import annotations

import gc
from functools import partial
from pathlib import Path

import pytest

from a3s_gateway.runtime import api
from a3s_gateway.runtime.body_end import WatchedBody
from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.runtime.upstream import client as upstream_client

from .backends import RawClient, backend
from .stubs import free_port

pytestmark = pytest.mark.anyio

# The access log's and the metrics' end-of-body callback is a `partial` of a module function.
_GATEWAY_TYPES = (api.Request, api.Response, upstream_client._Exchange, partial, WatchedBody)


@pytest.mark.parametrize("access_log", [False, True])
async def test_a_proxied_exchange_leaves_no_cycle(tmp_path: Path, access_log: bool) -> None:
    port, path = free_port(), tmp_path / "gw.hcl"
    async with backend() as be:
        log = f'access_log {{ path = "{tmp_path / "a.json"}" }}\n' if access_log else ""
        path.write_text(
            f'entrypoints "web" {{ address = "127.0.0.1:{port}" }}\n'
            'routers "all" {\n  rule    = "PathPrefix(`/`)"\n  service = "app"\n}\n'
            f'services "app" {{\n  load_balancer {{ servers = [{{ url = "{be.url}" }}] }}\n}}\n' + log
        )
        async with Gateway(str(path)):
            async with RawClient.connect(port) as client:  # warm: the pool's connection is made
                await client.send(b"GET /json HTTP/1.1\r\nhost: gw.test\r\n\r\n")
                await client.read_response("GET")
            gc.collect()
            gc.disable()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                async with RawClient.connect(port) as client:
                    for _ in range(20):
                        await client.send(b"GET /json HTTP/1.1\r\nhost: gw.test\r\n\r\n")
                        assert (await client.read_response("GET")).status == 200
                gc.collect()
                left = [o for o in gc.garbage if isinstance(o, _GATEWAY_TYPES)]
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
                gc.enable()
    assert left == []
