"""gRPC end to end: a real grpcio client, through the gateway, to a real grpcio server.

The client speaks HTTP/2 with prior knowledge (h2c) to a plain entrypoint; the gateway speaks
h2c to the server (`h2c://` server URL). No protobuf: the methods carry raw bytes (generic
handlers with identity serialisers), which is all the gateway ever sees anyway. grpcio runs on
its own threads, so the gateway runs on every anyio backend while the peers do not care.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import grpc
import pytest

from a3s_gateway.runtime.events import Body, EndOfBody, RequestHead, Reset, ResponseHead, Trailers
from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.runtime.protocols.http2 import H2ClientConnection

from .stubs import free_port

pytestmark = pytest.mark.anyio

SERVICE = "test.Echo"
MiB = 1 << 20
_OPTIONS = [("grpc.max_send_message_length", 8 * MiB), ("grpc.max_receive_message_length", 8 * MiB)]


# ------------------------------------------------------------------------------- the server


def _unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    return b"echo:" + request


def _server_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    for i in range(int(request)):
        yield b"item-%d" % i


def _client_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    return b"+".join(requests)


def _bidi(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    for message in requests:
        yield message.upper()


def _fail(request: bytes, context: grpc.ServicerContext) -> bytes:
    context.set_trailing_metadata((("x-detail", "quota"), ("x-bin-bin", b"\x00\x01")))
    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "out of tokens: é")
    raise AssertionError("abort raises")


def _slow(request: bytes, context: grpc.ServicerContext) -> bytes:
    time.sleep(float(request))
    return b"late"


def _handlers() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(_unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(_server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(_client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(_bidi),
            "Fail": grpc.unary_unary_rpc_method_handler(_fail),
            "Slow": grpc.unary_unary_rpc_method_handler(_slow),
        },
    )


@pytest.fixture(scope="module")
def grpc_backend() -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=_OPTIONS)
    server.add_generic_rpc_handlers((_handlers(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(grace=None)


# ------------------------------------------------------------------------------- the gateway


def _config(tmp_path: Path, port: int, upstream: str, entrypoint: str = "") -> str:
    path = tmp_path / "grpc.hcl"
    path.write_text(
        f"""
entrypoints "grpc" {{
  address = "127.0.0.1:{port}"
  {entrypoint}
}}
routers "echo" {{
  rule    = "PathPrefix(`/{SERVICE}/`)"
  service = "echo"
}}
services "echo" {{
  load_balancer {{
    servers = [{{ url = "{upstream}" }}]
  }}
}}
"""
    )
    return str(path)


@asynccontextmanager
async def gateway_port(tmp_path: Path, upstream: str, entrypoint: str = "") -> AsyncIterator[int]:
    port = free_port()
    async with Gateway(_config(tmp_path, port, upstream, entrypoint)):
        yield port


@asynccontextmanager
async def gateway_to(tmp_path: Path, upstream: str, entrypoint: str = "") -> AsyncIterator[grpc.Channel]:
    async with gateway_port(tmp_path, upstream, entrypoint) as port:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=_OPTIONS)
        try:
            yield channel
        finally:
            channel.close()


async def raw_grpc(
    port: int, method: str, message: bytes, extra: list[tuple[bytes, bytes]]
) -> tuple[ResponseHead, list[tuple[bytes, bytes]]]:
    """One unary call with our own HTTP/2 client adapter: the response head and trailers."""
    client = H2ClientConnection()
    sid = client.open_stream()
    headers = [(b"content-type", b"application/grpc"), (b"te", b"trailers"), *extra]
    out = client.data_to_send() + client.send(
        RequestHead(sid, b"POST", f"/{SERVICE}/{method}".encode(), headers, authority=b"gw", has_body=True)
    )
    out += client.send(Body(sid, b"\x00" + len(message).to_bytes(4, "big") + message), end_stream=True)
    head: ResponseHead | None = None
    trailers: list[tuple[bytes, bytes]] = []
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(out)
        while True:
            for ev in client.receive_data(await stream.receive(), time.monotonic()):
                if isinstance(ev, ResponseHead):
                    head, trailers = ev, ev.headers  # trailers-only answers carry them here
                elif isinstance(ev, Trailers):
                    trailers = ev.headers
                elif isinstance(ev, EndOfBody | Reset):
                    assert head is not None
                    return head, trailers
            await stream.send(client.data_to_send())


def _call(channel: grpc.Channel, kind: str, method: str) -> Any:
    factory = getattr(channel, kind)
    return factory(f"/{SERVICE}/{method}")


async def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))


# ------------------------------------------------------------------------------- tests


async def test_unary_and_streaming_rpcs(tmp_path: Path, grpc_backend: int) -> None:
    async with gateway_to(tmp_path, f"h2c://127.0.0.1:{grpc_backend}") as channel:
        assert await run(_call(channel, "unary_unary", "Unary"), b"hi", timeout=10) == b"echo:hi"
        items = await run(lambda: list(_call(channel, "unary_stream", "ServerStream")(b"5", timeout=10)))
        assert items == [b"item-%d" % i for i in range(5)]
        joined = await run(
            _call(channel, "stream_unary", "ClientStream"), iter([b"a", b"b", b"c"]), timeout=10
        )
        assert joined == b"a+b+c"


async def test_bidirectional_streaming_interleaves(tmp_path: Path, grpc_backend: int) -> None:
    """Each answer arrives before the next request is sent: both directions are live at once."""
    async with gateway_to(tmp_path, f"h2c://127.0.0.1:{grpc_backend}") as channel:

        def converse() -> list[bytes]:
            import queue

            outbox: queue.Queue[bytes | None] = queue.Queue()
            replies: list[bytes] = []
            call = _call(channel, "stream_stream", "Bidi")(iter(outbox.get, None), timeout=10)
            for word in (b"one", b"two", b"three"):
                outbox.put(word)
                replies.append(next(call))
            outbox.put(None)
            assert list(call) == []
            return replies

        assert await run(converse) == [b"ONE", b"TWO", b"THREE"]


async def test_a_streaming_call_outlives_read_body(tmp_path: Path, grpc_backend: int) -> None:
    """read_body bounds uploads; a gRPC call's request stream lasts as long as the call."""
    entrypoint = 'timeouts { read_body = "200ms" }'
    async with gateway_to(tmp_path, f"h2c://127.0.0.1:{grpc_backend}", entrypoint) as channel:

        def converse() -> list[bytes]:
            import queue

            outbox: queue.Queue[bytes | None] = queue.Queue()
            replies: list[bytes] = []
            call = _call(channel, "stream_stream", "Bidi")(iter(outbox.get, None), timeout=20)
            for word in (b"one", b"two", b"three", b"four"):
                outbox.put(word)
                replies.append(next(call))
                time.sleep(0.3)  # the request stream stays open well past read_body
            outbox.put(None)
            assert list(call) == []
            return replies

        assert await run(converse) == [b"ONE", b"TWO", b"THREE", b"FOUR"]


async def test_four_mebibyte_messages_both_ways(tmp_path: Path, grpc_backend: int) -> None:
    big = bytes(range(256)) * (4 * MiB // 256)
    async with gateway_to(tmp_path, f"h2c://127.0.0.1:{grpc_backend}") as channel:
        reply = await run(_call(channel, "unary_unary", "Unary"), big, timeout=20)
        assert reply == b"echo:" + big


async def test_error_status_and_trailing_metadata_are_relayed(tmp_path: Path, grpc_backend: int) -> None:
    async with gateway_to(tmp_path, f"h2c://127.0.0.1:{grpc_backend}") as channel:
        with pytest.raises(grpc.RpcError) as info:
            await run(_call(channel, "unary_unary", "Fail"), b"x", timeout=10)
    error: Any = info.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.details() == "out of tokens: é"
    metadata = dict(error.trailing_metadata())
    assert metadata["x-detail"] == "quota" and metadata["x-bin-bin"] == b"\x00\x01"


async def test_expiring_deadline_is_deadline_exceeded(tmp_path: Path, grpc_backend: int) -> None:
    async with gateway_to(tmp_path, f"h2c://127.0.0.1:{grpc_backend}") as channel:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            await run(_call(channel, "unary_unary", "Slow"), b"3", timeout=0.5)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
        assert time.monotonic() - started < 2.5

    # The gateway honours grpc-timeout itself: its own trailers say DEADLINE_EXCEEDED (4).
    async with gateway_port(tmp_path, f"h2c://127.0.0.1:{grpc_backend}") as port:
        started = time.monotonic()
        head, trailers = await raw_grpc(port, "Slow", b"3", [(b"grpc-timeout", b"300m")])
        assert time.monotonic() - started < 2.5
    assert head.status == 200
    assert dict(trailers)[b"grpc-status"] == b"4"


async def test_no_backend_is_unavailable(tmp_path: Path) -> None:
    async with gateway_to(tmp_path, f"h2c://127.0.0.1:{free_port()}") as channel:
        with pytest.raises(grpc.RpcError) as info:
            await run(_call(channel, "unary_unary", "Unary"), b"x", timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


async def test_many_concurrent_calls_share_upstream_connections(tmp_path: Path, grpc_backend: int) -> None:
    async with gateway_to(tmp_path, f"h2c://127.0.0.1:{grpc_backend}") as channel:
        method = _call(channel, "unary_unary", "Unary")
        results: list[bytes] = []

        async def one(i: int) -> None:
            results.append(await run(method, b"%d" % i, timeout=10))

        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(one, i)
        assert sorted(results) == sorted(b"echo:%d" % i for i in range(50))
