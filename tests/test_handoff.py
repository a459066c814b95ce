"""A worker's side of the supervisor's hand-off (runtime/handoff.py), in one process: the
published generations it follows, and the ones it does not read again."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from a3s_gateway.compiler import IRGraph, compile_config
from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.runtime.handoff import GraphFollower, Published, generation_of, publish_graph

from .stubs import free_port

pytestmark = pytest.mark.anyio


def _graph(tmp_path: Path, port: int, prefix: str) -> IRGraph:
    path = tmp_path / f"{prefix.strip('/')}.hcl"
    path.write_text(
        f'entrypoints "web" {{ address = "127.0.0.1:{port}" }}\n'
        f'routers "r" {{\n  rule    = "PathPrefix(`{prefix}`)"\n  service = "s"\n}}\n'
        'services "s" {\n  load_balancer { servers = [{ url = "demo://s" }] }\n}\n'
    )
    result = compile_config([str(path)])
    assert result.graph is not None
    return result.graph


async def test_a_worker_loads_a_new_generation_once_and_never_reads_a_served_one_again(
    tmp_path: Path,
) -> None:
    port, graphs = free_port(), tmp_path / "graphs"
    graphs.mkdir(mode=0o700)
    first = publish_graph(str(graphs), Published(1, _graph(tmp_path, port, "/v1")))
    assert generation_of(first) == 1
    follower = GraphFollower(first)
    async with (
        Gateway(follower.first.graph, generation=1) as gateway,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        assert (await client.get("/v1/models")).status_code == 200

        second = publish_graph(str(graphs), Published(2, _graph(tmp_path, port, "/v2")))
        plan = await follower.follow(gateway)
        assert gateway.graph.generation == 2 and plan.changed == ("router:r",)
        assert (await client.get("/v1/models")).status_code == 404  # unrouted now

        # Signalled again for the generation it serves (SIGHUP to the process group, or a
        # SIGHUP and its own admin request): the file is not read again, so not even a file
        # that no longer unpickles disturbs it.
        Path(second).write_bytes(b"not a pickle")
        assert await follower.follow(gateway) == plan
        assert gateway.graph.generation == 2
        assert (await client.get("/v1/models")).status_code == 404
