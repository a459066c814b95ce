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
        Gateway(follower.take_first().graph, generation=1) as gateway,
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


def test_what_the_workers_are_handed_follows_the_compiled_settings(tmp_path: Path) -> None:
    """`api { dashboard = true }` without a metrics block: the compiler adds the metrics the
    dashboard needs, the workers serve with them, so the supervisor counts rejected reloads
    too (it read the files' settings as written before, and counted none after a reload)."""
    from a3s_gateway.runtime.publisher import Compiled, compile_for_workers

    path = tmp_path / "gw.hcl"
    path.write_text(
        f'entrypoints "web" {{ address = "127.0.0.1:{free_port()}" }}\n'
        f'api {{\n  address   = "127.0.0.1:{free_port()}"\n  dashboard = true\n}}\n'
        'routers "r" {\n  rule    = "PathPrefix(`/`)"\n  service = "s"\n}\n'
        'services "s" {\n  load_balancer { servers = [{ url = "demo://s" }] }\n}\n'
    )
    compiled = compile_for_workers([str(path)], {})
    assert isinstance(compiled, Compiled)
    assert compiled.graph.settings.metrics is not None  # type: ignore[attr-defined]
    assert compiled.metrics


def test_the_first_generation_is_handed_over_once(tmp_path: Path) -> None:
    """The follower keeps no graph the worker may no longer serve: the first is taken once."""
    graphs = tmp_path / "graphs"
    graphs.mkdir(mode=0o700)
    follower = GraphFollower(publish_graph(str(graphs), Published(1, _graph(tmp_path, free_port(), "/v1"))))
    assert follower.take_first().generation == 1
    with pytest.raises(RuntimeError):
        follower.take_first()
