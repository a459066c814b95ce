"""The path routed is the path the backend reads: raw bytes (HTTP/1.1) and h2 frames (HTTP/2)
through a running gateway to a real backend that records the target it received.

The gateway guards `/admin` with ip-allow (nobody is allowed, so a routed request gets 403);
everything else goes to the backend. Before the request-target rules, `/public/../admin` was
routed as `/public` and forwarded as sent, and the backend resolved it to `/admin`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import h2.config
import h2.connection
import h2.events
import pytest

from a3s_gateway.runtime.gateway import Gateway

from .backends import Backend, RawClient, Reply, backend
from .stubs import free_ports

pytestmark = pytest.mark.anyio

CONFIG = """
entrypoints "web" {{ address = "127.0.0.1:{web}" }}
entrypoints "open" {{
  address = "127.0.0.1:{open}"
  http {{
    encoded_characters {{
      allow_encoded_slash          = true
      allow_encoded_backslash      = true
      allow_encoded_null_character = true
      allow_encoded_semicolon      = true
      allow_encoded_percent        = true
      allow_encoded_question_mark  = true
      allow_encoded_hash           = true
    }}
    sanitize_path = false
  }}
}}
routers "admin" {{
  rule        = "PathPrefix(`/admin`)"
  service     = "app"
  middlewares = ["nobody"]
}}
routers "a-example" {{
  rule        = "Host(`a.example`)"
  service     = "app"
  priority    = 1000
  middlewares = ["tag-a"]
}}
routers "public" {{
  rule    = "PathPrefix(`/`)"
  service = "app"
}}
services "app" {{
  load_balancer {{ servers = [{{ url = "{upstream}" }}] }}
}}
middlewares "nobody" {{ type = "ip-allow"; allowed_ips = ["10.255.255.255/32"] }}
middlewares "tag-a" {{ type = "headers"; request_headers = {{ "X-Router" = "a-example" }} }}
"""


@dataclass
class Ports:
    web: int
    open: int
    backend: Backend


@asynccontextmanager
async def running(tmp_path: Path) -> AsyncIterator[Ports]:
    web, open_ = free_ports(2)
    async with backend() as be:
        path = tmp_path / "gw.hcl"
        path.write_text(CONFIG.format(web=web, open=open_, upstream=be.url))
        async with Gateway(str(path)):
            yield Ports(web, open_, be)


async def raw(port: int, head: bytes) -> Reply:
    async with RawClient.connect(port) as client:
        await client.send(head)
        return await client.read_response()


async def get(port: int, target: str, host: str = "gw.test") -> Reply:
    return await raw(port, f"GET {target} HTTP/1.1\r\nhost: {host}\r\n\r\n".encode("latin-1"))


def forwarded(ports: Ports, before: int) -> list[str]:
    return [seen.target for seen in ports.backend.seen[before:]]


# (sent, status, what the backend receives) on the default entrypoint.
DEFAULT_CASES = [
    # Sanitisation (RFC 3986 §5.2.4, duplicate slashes): the guard on /admin holds.
    ("/public/../admin/keys", 403, None),
    ("/public/%2e%2E/admin/keys", 403, None),
    ("/public/%2E%2e/%61dmin", 403, None),
    ("/public//..//admin", 403, None),
    ("/public/./x/.././y", 200, "/public/y"),
    ("/public/x/..", 200, "/public/"),
    ("//public///y", 200, "/public/y"),
    # Normalisation: unreserved decoded (§2.3), the rest upper-cased (§6.2.2.1).
    ("/p%61th/%7Euser/%2d", 200, "/path/~user/-"),
    ("/caf%c3%a9", 200, "/caf%C3%A9"),
    # The query string is left exactly as sent.
    ("/public/../q?a=/../%2f&b=%zz#", 200, "/q?a=/../%2f&b=%zz#"),
    ("/plain?x=%2e%2e", 200, "/plain?x=%2e%2e"),
    # The encoded-character filter, either case.
    ("/a%2fb", 400, None),
    ("/a%2Fb", 400, None),
    ("/a%5cb", 400, None),
    ("/a%00b", 400, None),
    ("/a%3Bb", 400, None),
    ("/a%25b", 400, None),
    ("/a%3fb", 400, None),
    ("/a%23b", 400, None),
    # Malformed encodings, a fragment, a raw backslash, a dot-segment with parameters.
    ("/a%zzb", 400, None),
    ("/a%2", 400, None),
    ("/a#b", 400, None),
    ("/public\\..\\admin", 400, None),
    ("/public/..;/admin", 400, None),
    # ';' elsewhere is data (RFC 3986 §3.3).
    ("/a;v=1/b", 200, "/a;v=1/b"),
]


async def test_http1_paths_are_normalised_before_routing_and_forwarded_as_routed(tmp_path: Path) -> None:
    async with running(tmp_path) as ports:
        for sent, status, received in DEFAULT_CASES:
            before = len(ports.backend.seen)
            reply = await get(ports.web, sent)
            assert reply.status == status, (sent, reply.status, reply.body)
            assert forwarded(ports, before) == ([received] if received else []), sent


async def test_each_encoded_character_and_sanitisation_can_be_allowed(tmp_path: Path) -> None:
    async with running(tmp_path) as ports:
        for sent, received in [
            ("/a%2fb", "/a%2Fb"),
            ("/a%5Cb", "/a%5Cb"),
            ("/a\\b", "/a%5Cb"),  # allowed: data, never a separator
            ("/a%00b", "/a%00b"),
            ("/a%3bb", "/a%3Bb"),
            ("/a%25b", "/a%25b"),
            ("/a%3Fb", "/a%3Fb"),
            ("/a%23b", "/a%23b"),
            ("/x//y/../z", "/x//y/../z"),  # sanitize_path = false
            ("/p%61th", "/path"),  # normalisation still applies
        ]:
            before = len(ports.backend.seen)
            reply = await get(ports.open, sent)
            assert reply.status == 200, (sent, reply.status, reply.body)
            assert forwarded(ports, before) == [received], sent


async def test_absolute_form_goes_through_the_same_rules(tmp_path: Path) -> None:
    async with running(tmp_path) as ports:
        reply = await raw(ports.web, b"GET http://gw.test/public/../admin HTTP/1.1\r\nhost: gw.test\r\n\r\n")
        assert reply.status == 403
        reply = await raw(ports.web, b"GET http://gw.test/a%2fb HTTP/1.1\r\nhost: gw.test\r\n\r\n")
        assert reply.status == 400
        before = len(ports.backend.seen)
        reply = await raw(
            ports.web, b"GET http://gw.test/x/./y/../%7Ez?q=/.. HTTP/1.1\r\nhost: gw.test\r\n\r\n"
        )
        assert reply.status == 200
        assert forwarded(ports, before) == ["/x/~z?q=/.."]


async def test_absolute_form_authority_is_what_host_rules_match(tmp_path: Path) -> None:
    """RFC 9112 §3.2.2: the target's authority wins over Host, and stands in for a missing one."""
    async with running(tmp_path) as ports:
        for head in [
            b"GET http://a.example/x HTTP/1.1\r\nhost: b.example\r\n\r\n",
            b"GET http://a.example/x HTTP/1.0\r\n\r\n",
        ]:
            before = len(ports.backend.seen)
            reply = await raw(ports.web, head)
            assert reply.status == 200, head
            (seen,) = ports.backend.seen[before:]
            assert seen.header("x-router") == "a-example", head
            assert seen.header("host") == "a.example"
        reply = await raw(ports.web, b"GET http://a,b.example/x HTTP/1.1\r\nhost: a.example\r\n\r\n")
        assert reply.status == 400


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("a.example", 200),
        ("a.example:8080", 200),
        ("10.1.2.3:80", 200),
        ("[::1]:8080", 200),
        ("[2001:db8::1]", 200),
        ("", 200),  # RFC 9112 §3.2: an empty authority has an empty Host
        ("a example", 400),
        ("a.example/x", 400),
        ("user@a.example", 400),
        ("a.example, b.example", 400),
        ("a.example:80x", 400),
        ("[::1", 400),
        ("[not-ipv6]:80", 400),
    ],
)
async def test_host_must_be_a_valid_authority(tmp_path: Path, host: str, status: int) -> None:
    async with running(tmp_path) as ports:
        reply = await raw(ports.web, f"GET /x HTTP/1.1\r\nhost: {host}\r\n\r\n".encode())
        assert reply.status == status, (host, reply.body)


async def test_exactly_one_host(tmp_path: Path) -> None:
    async with running(tmp_path) as ports:
        two = await raw(ports.web, b"GET /x HTTP/1.1\r\nhost: a.example\r\nhost: b.example\r\n\r\n")
        assert two.status == 400
        none = await raw(ports.web, b"GET /x HTTP/1.1\r\n\r\n")
        assert none.status == 400
        before = len(ports.backend.seen)
        assert (await raw(ports.web, b"GET /x HTTP/1.0\r\n\r\n")).status == 200  # HTTP/1.0 may omit it
        assert forwarded(ports, before) == ["/x"]


# ------------------------------------------------------------------------------------------- HTTP/2


async def h2_get(port: int, path: str, authority: str | None = "gw.test", extra: Any = ()) -> int:
    """One h2c request with a raw :path (no client-side normalisation); returns the status."""
    config = h2.config.H2Configuration(client_side=True, validate_outbound_headers=False)
    conn = h2.connection.H2Connection(config)
    conn.initiate_connection()
    headers = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", path.encode("latin-1"))]
    if authority is not None:
        headers.append((b":authority", authority.encode()))
    conn.send_headers(1, [*headers, *extra], end_stream=True)
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(conn.data_to_send())
        with anyio.fail_after(10):
            while True:
                for event in conn.receive_data(await stream.receive()):
                    if isinstance(event, h2.events.ResponseReceived):
                        return int(dict(event.headers)[b":status"])
                    assert not isinstance(event, h2.events.StreamReset), "stream reset"
                await stream.send(conn.data_to_send())


async def test_http2_paths_go_through_the_same_rules(tmp_path: Path) -> None:
    async with running(tmp_path) as ports:
        for sent, status, received in DEFAULT_CASES:
            before = len(ports.backend.seen)
            assert await h2_get(ports.web, sent) == status, sent
            assert forwarded(ports, before) == ([received] if received else []), sent
        before = len(ports.backend.seen)
        assert await h2_get(ports.open, "/a%2fb/../c") == 200
        assert forwarded(ports, before) == ["/a%2Fb/../c"]


async def test_http2_authority_and_host(tmp_path: Path) -> None:
    async with running(tmp_path) as ports:
        assert await h2_get(ports.web, "/x", "a.example") == 200
        assert ports.backend.seen[-1].header("x-router") == "a-example"
        assert await h2_get(ports.web, "/x", "a,b.example") == 400
        assert await h2_get(ports.web, "/x", "user@a.example") == 400
        assert await h2_get(ports.web, "/x", None, [(b"host", b"a.example")]) == 200
        # Two Host fields: the h2 library refuses the header block as a connection error
        # (GOAWAY), before any routing; nothing reaches the backend.
        before = len(ports.backend.seen)
        two_hosts = [(b"host", b"a.example"), (b"host", b"b.example")]
        with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError, AssertionError)):
            await h2_get(ports.web, "/x", None, two_hosts)
        assert forwarded(ports, before) == []
