"""forward-auth against a real HTTP auth service started in the test (anyio TCP listener)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest
from pydantic import ValidationError

from a3s_gateway.runtime.api import Headers, Request, Response
from a3s_gateway.runtime.errors import BadGateway, GatewayTimeout
from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.middlewares.forward_auth import ForwardAuth, ForwardAuthConfig

from .http_peer import PeerRequest, Reply, http_peer

pytestmark = pytest.mark.anyio

Seen = PeerRequest
Answer = Reply


@asynccontextmanager
async def auth_service(answer: Callable[[Seen], Awaitable[Answer]]) -> AsyncIterator[tuple[str, list[Seen]]]:
    """The auth service: records each request, replies with `answer`."""
    async with http_peer(answer) as (port, seen):
        yield f"http://127.0.0.1:{port}/verify", seen


def fixed(status: int, headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> Any:
    async def answer(_: Seen) -> Answer:
        return status, headers or [], body

    return answer


class Backend:
    """The `next` handler: records what reached it and answers 200."""

    def __init__(self) -> None:
        self.seen: list[Request] = []

    async def __call__(self, request: Request) -> Response:
        self.seen.append(request)
        return Response.text(200, "backend")


@asynccontextmanager
async def middleware(**options: Any) -> AsyncIterator[ForwardAuth]:
    ctx = BuildContext(node_id="middleware:sso", name="sso")
    config = ForwardAuthConfig.model_validate(options)
    state = ForwardAuth.new_state(config, ctx)
    try:
        yield ForwardAuth(config, state, ctx)
    finally:
        await ForwardAuth.close_state(state)


def request(method: str = "GET", target: str = "/api/items?x=1", *headers: tuple[str, str]) -> Request:
    pairs = [("host", "gw.example.com"), *headers]
    return Request(method, target, Headers.from_pairs(pairs), client_ip="203.0.113.7", scheme="https")


async def body_of(response: Response) -> bytes:
    return b"".join([chunk async for chunk in response.body])


async def test_2xx_passes_and_copies_response_headers() -> None:
    answer = fixed(200, [("X-User-Id", "u-42"), ("X-Role", "admin"), ("X-Other", "no")], b"ok")
    async with (
        auth_service(answer) as (url, seen),
        middleware(
            forward_auth_url=url, forward_auth_response_headers=["X-User-Id", "X-Role", "X-Missing"]
        ) as mw,
    ):
        backend = Backend()
        req = request("POST", "/api/items?x=1", ("authorization", "Bearer t"), ("x-missing", "forged"))
        response = await mw(req, backend)
    assert response.status == 200 and len(backend.seen) == 1
    forwarded = backend.seen[0].headers
    assert forwarded.get("x-user-id") == "u-42" and forwarded.get("x-role") == "admin"
    assert "x-other" not in forwarded  # only the listed headers are copied
    assert "x-missing" not in forwarded  # listed but absent in the answer: the client's value is dropped
    auth = seen[0]
    assert auth["method"] == "POST" and auth["target"] == "/verify"
    assert auth["headers"].get("authorization") == "Bearer t"
    assert auth["headers"].get("x-forwarded-method") == "POST"
    assert auth["headers"].get("x-forwarded-uri") == "/api/items?x=1"
    assert auth["headers"].get("x-forwarded-host") == "gw.example.com"
    assert auth["headers"].get("x-forwarded-proto") == "https"
    assert auth["headers"].get("x-forwarded-for") == "203.0.113.7"
    assert auth["headers"].get("host") == url.split("/")[2]  # the auth service's own Host


async def test_denial_goes_back_as_it_came() -> None:
    answer = fixed(
        401, [("WWW-Authenticate", 'Basic realm="sso"'), ("Content-Type", "text/html")], b"<h1>login</h1>"
    )
    async with auth_service(answer) as (url, _), middleware(forward_auth_url=url) as mw:
        backend = Backend()
        response = await mw(request(), backend)
        body = await body_of(response)
    assert backend.seen == []
    assert response.status == 401
    assert response.headers.get("www-authenticate") == 'Basic realm="sso"'
    assert response.headers.get("content-type") == "text/html"
    assert body == b"<h1>login</h1>"


async def test_redirect_is_not_followed() -> None:
    answer = fixed(302, [("Location", "https://sso.example.com/login")])
    async with auth_service(answer) as (url, seen), middleware(forward_auth_url=url) as mw:
        response = await mw(request(), Backend())
        await response.aclose()
    assert response.status == 302 and response.headers.get("location") == "https://sso.example.com/login"
    assert len(seen) == 1


async def test_method_override_and_header_selection() -> None:
    async with (
        auth_service(fixed(204)) as (url, seen),
        middleware(forward_auth_url=url, method="get", auth_request_headers=["Cookie"]) as mw,
    ):
        req = request(
            "DELETE", "/x", ("cookie", "s=1"), ("authorization", "Bearer t"), ("connection", "x-hop")
        )
        req.headers.add("x-hop", "1")
        response = await mw(req, Backend())
    assert response.status == 200
    sent = seen[0]["headers"]
    assert seen[0]["method"] == "GET" and sent.get("x-forwarded-method") == "DELETE"
    assert sent.get("cookie") == "s=1" and "authorization" not in sent and "x-hop" not in sent


async def test_client_cannot_forge_forwarded_headers() -> None:
    async with auth_service(fixed(200)) as (url, seen), middleware(forward_auth_url=url) as mw:
        req = request("GET", "/", ("x-forwarded-for", "10.0.0.1"), ("x-forwarded-uri", "/admin"))
        await mw(req, Backend())
    sent = seen[0]["headers"]
    assert sent.get_all("x-forwarded-for") == ["203.0.113.7"]
    assert sent.get_all("x-forwarded-uri") == ["/"]


async def test_connection_is_reused_across_requests() -> None:
    async with auth_service(fixed(200, body=b"fine")) as (url, seen), middleware(forward_auth_url=url) as mw:
        for _ in range(3):
            await mw(request(), Backend())
    assert len(seen) == 3


async def test_timeout_is_504_never_a_pass() -> None:
    async def slow(_: Seen) -> Answer:
        await anyio.sleep(10)
        return 200, [], b""

    async with auth_service(slow) as (url, _), middleware(forward_auth_url=url, timeout="200ms") as mw:
        backend = Backend()
        with pytest.raises(GatewayTimeout):
            await mw(request(), backend)
    assert backend.seen == []


async def test_refused_connection_is_502() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()  # nothing listens there any more
    async with middleware(forward_auth_url=f"http://127.0.0.1:{port}/verify") as mw:
        backend = Backend()
        with pytest.raises(BadGateway) as error:
            await mw(request(), backend)
    assert error.value.status == 502 and backend.seen == []


async def test_broken_answer_is_502() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def garbage(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(b"NOT HTTP AT ALL\r\n\r\n")

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, garbage)
        async with middleware(forward_auth_url=f"http://127.0.0.1:{port}/") as mw:
            with pytest.raises(BadGateway):
                await mw(request(), Backend())
        tg.cancel_scope.cancel()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"forward_auth_url": "ftp://auth/verify"},
        {"forward_auth_url": "not a url"},
        {"forward_auth_url": "http://auth/", "forward_auth_response_headers": ["bad header"]},
        {"forward_auth_url": "http://auth/", "timeout": "soon"},
        {"forward_auth_url": "http://auth/", "unknown": 1},
    ],
)
def test_config_errors_are_validation_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ForwardAuthConfig.model_validate(options)


def test_a3s_keys() -> None:
    config = ForwardAuthConfig.model_validate(
        {"forward_auth_url": "https://auth.example.com/verify", "forward_auth_response_headers": ["X-User"]}
    )
    assert config.forward_auth_response_headers == ["X-User"] and config.timeout == 5.0
