"""For any bytes a backend sends after a complete response, the next exchange on that pool sees
none of them: in the same write as the response, or later while the connection sits idle.

Real sockets: a raw backend scripted byte for byte, and the gateway's `UpstreamClient`.
"""

from __future__ import annotations

import anyio
import anyio.abc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from a3s_gateway.compiler.schema import ServiceTimeouts
from a3s_gateway.runtime.api import Headers, Request
from a3s_gateway.runtime.upstream.client import UpstreamClient

_RESPONSES = [
    b"HTTP/1.1 302 Found\r\nLocation: http://evil.example/\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nforge\r\n0\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"\r\n",
]
# Whole forged responses, any prefix of one (the next real response would complete it), junk.
_forged = st.sampled_from(_RESPONSES).flatmap(lambda r: st.integers(1, len(r)).map(lambda n: r[:n]))
extras = st.lists(_forged | st.binary(min_size=1, max_size=64), min_size=1, max_size=3).map(b"".join)


# A bound, not a measurement: an exchange misled by stray bytes waits for a body that never comes.
_TIMEOUTS = ServiceTimeouts(response_header=5, idle=5)


def _ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)


def _request(method: str, target: str) -> Request:
    return Request(method, target, Headers.from_pairs([("host", "backend")]), content_length=0)


async def _exchange(client: UpstreamClient, url: str, method: str, target: str) -> tuple[int, bytes]:
    request = _request(method, target)
    response = await client.send(request, url, _TIMEOUTS, headers=request.headers)
    return response.status, b"".join([chunk async for chunk in response.body])


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=80)
@given(extras, st.sampled_from(["GET", "HEAD"]), st.booleans())
def test_bytes_after_a_response_never_reach_the_next_exchange(extra: bytes, method: str, late: bool) -> None:
    async def main() -> None:
        streams: list[anyio.abc.ByteStream] = []

        async def serve(stream: anyio.abc.ByteStream) -> None:
            streams.append(stream)
            first, buffer = len(streams) == 1, b""
            try:
                while True:
                    while b"\r\n\r\n" not in buffer:
                        buffer += await stream.receive()
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    target = head.split(b" ", 2)[1]
                    # The first response: to HEAD, its 5 body bytes are already extra.
                    answer = _ok(b"first") + (b"" if late else extra) if first else _ok(b"clean " + target)
                    first = False
                    await stream.send(answer)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass

        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        url = f"http://127.0.0.1:{listener.extra(anyio.abc.SocketAttribute.local_port)}"
        client = UpstreamClient()
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, serve)
            status, body = await _exchange(client, url, method, "/first")
            assert (status, body) == (200, b"" if method == "HEAD" else b"first")
            (pool,) = client._pools.values()
            if late and method == "GET":  # parked clean, until the bytes arrive
                await streams[0].send(extra)
                with anyio.fail_after(10):
                    while not pool._idle[0].looks_closed():
                        await anyio.sleep(0.005)
            for target in ("/second", "/third"):
                status, body = await _exchange(client, url, "GET", target)
                assert (status, body) == (200, b"clean " + target.encode())
            assert len(streams) == 2  # the first connection was never reused; the second was
            await client.aclose()
            tg.cancel_scope.cancel()

    anyio.run(main)
