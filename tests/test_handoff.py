"""A worker's side of the supervisor's hand-off (runtime/handoff.py), in one process: the
generations it swaps to only when every worker could build them (runtime/twophase.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from a3s_gateway.compiler import IRGraph, compile_config
from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.runtime.handoff import GraphFollower, Published, publish_graph
from a3s_gateway.runtime.publisher import (
    Accepted,
    Failed,
    GraphPublisher,
    ask_for_reload,
    compile_for_workers,
)

from .stubs import free_port
from .test_cli_run import GATEWAY

pytestmark = pytest.mark.anyio


def _source(port: int, prefix: str) -> str:
    return (
        f'entrypoints "web" {{ address = "127.0.0.1:{port}" }}\n'
        f'routers "r" {{\n  rule    = "PathPrefix(`{prefix}`)"\n  service = "s"\n}}\n'
        'services "s" {\n  load_balancer { servers = [{ url = "demo://s" }] }\n}\n'
    )


def _graph(tmp_path: Path, port: int, prefix: str) -> IRGraph:
    path = tmp_path / f"{prefix.strip('/')}.hcl"
    path.write_text(_source(port, prefix))
    result = compile_config([str(path)])
    assert result.graph is not None
    return result.graph


class Peer:
    """A member of the supervisor's reloads that is not a gateway: a socket speaking the
    protocol (runtime/twophase.py), whose answers the test chooses."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.lines = BufferedByteReceiveStream(stream)

    @classmethod
    async def join(cls, control: str, generation: int) -> Peer:
        peer = cls(await anyio.connect_unix(control))
        await peer.send({"op": "join", "worker": 1, "pid": 4242, "generation": generation})
        return peer

    async def send(self, message: dict[str, Any]) -> None:
        await self.stream.send(json.dumps(message).encode() + b"\n")

    async def receive(self) -> dict[str, Any]:
        message = json.loads(await self.lines.receive_until(b"\n", 65536))
        assert isinstance(message, dict)
        return message

    async def vote(self, error: str | None) -> dict[str, Any]:
        """Answer the next transaction with `error` (None: ready); its decision."""
        ask = await self.receive()
        assert ask["op"] == "prepare"
        await self.send({"op": "prepared", "txn": ask["txn"], "error": error})
        decision = await self.receive()
        assert decision["op"] == "decide" and decision["txn"] == ask["txn"]
        await self.send({"op": "done", "txn": ask["txn"]})
        return decision


async def test_a_worker_swaps_only_when_every_worker_could_build_the_reload(tmp_path: Path) -> None:
    """A supervisor's publisher, a gateway following it and another member (`Peer`), in one
    process over the real control socket: a reload the other member fails, or does not answer
    in time, leaves the gateway on its generation, and the control socket's answer (a worker's
    admin API reload, and `a3s-gateway reload`) names the member and its error; one both are
    ready for is swapped to."""
    port, admin, config = free_port(), free_port(), tmp_path / "gw.hcl"
    api = f'api {{\n  address = "127.0.0.1:{admin}"\n}}\n'
    config.write_text(_source(port, "/v1") + api)
    publisher = GraphPublisher(str(tmp_path), [str(config)])
    publisher.publish(compile_for_workers([str(config)], {}))  # type: ignore[arg-type]
    assert publisher.newest is not None
    follower = GraphFollower(publisher.newest, publisher.control)
    stop = anyio.Event()
    async with (
        anyio.create_task_group() as tg,
        Gateway(
            follower.take_first().graph,
            generation=1,
            supervisor=os.getpid(),
            reload_all=lambda: follower.reload_all(gateway),
        ) as gateway,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        publisher.attach(tg.start_soon, lambda pid: None)
        await tg.start(publisher.serve_control)
        tg.start_soon(follower.run, gateway, stop)
        peer = await Peer.join(publisher.control, 1)
        with anyio.fail_after(10):
            while len(publisher.members) < 2:
                await anyio.sleep(0.01)
        config.write_text(_source(port, "/v2") + api)

        # The other member cannot build it: nothing changes here, and the answer says why, to
        # the CLI (through this gateway's admin API) as on the control socket.
        tg.start_soon(peer.vote, "[Errno 24] Too many open files")
        done = await anyio.run_process(
            [*GATEWAY, "reload", "--api", f"http://127.0.0.1:{admin}"], check=False
        )
        assert done.returncode == 2
        assert b"worker 1 (pid 4242): [Errno 24] Too many open files" in done.stderr, done.stderr
        assert gateway.graph.generation == 1 and gateway.reloads == 0
        tg.start_soon(peer.vote, "[Errno 24] Too many open files")
        failed = await ask_for_reload(publisher.control)
        assert isinstance(failed, Failed)
        assert "worker 1 (pid 4242): [Errno 24] Too many open files" in failed.message
        assert gateway.graph.generation == 1 and gateway.reloads == 0
        assert (await client.get("/v1/models")).status_code == 200
        assert sorted(os.listdir(publisher.directory)) == ["graph-000000001.pickle"]

        # It does not answer in time: the same.
        publisher.members.prepare_timeout = 0.2
        silent = await ask_for_reload(publisher.control)
        assert (
            isinstance(silent, Failed) and "worker 1 (pid 4242) did not answer within 0.2s" in silent.message
        )
        assert gateway.graph.generation == 1
        assert (await peer.receive())["op"] == "prepare"
        assert (await peer.receive()) == {"op": "decide", "txn": 3, "commit": False}

        # Both ready: both swap, as generation 2 (the failed ones took no number).
        publisher.members.prepare_timeout = 30
        tg.start_soon(peer.vote, None)
        assert await ask_for_reload(publisher.control) == Accepted(2)
        assert gateway.graph.generation == 2 and gateway.reloads == 1
        assert (await client.get("/v1/models")).status_code == 404  # unrouted now
        assert sorted(os.listdir(publisher.directory)) == ["graph-000000001.pickle", "graph-000000002.pickle"]
        stop.set()
        tg.cancel_scope.cancel()


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
