"""Real peers for the data-plane tests: an upstream server with scripted behaviours, a gateway
runner, and a byte-level HTTP/1.1 client. No mocks: everything talks over loopback sockets.

The backend's behaviour is chosen by path:
  /json              echo the request (method, target, headers, body) as JSON
  /chunked?n=N       N chunks, chunked encoding
  /sse?n=N           N SSE events; each event after the first waits for a token on `backend.step`
  /stall             accept the request, never answer (response_header timeouts); counts in
                     `abandoned` when the gateway closes the connection
  /stall-body        send the head and one chunk, then nothing (idle timeouts)
  /drop              answer with keep-alive, then close the connection (stale pooled connection)
  /malformed         an invalid status line
  /cut               declare Content-Length 100, send 10 bytes, close
  /big?size=N        N bytes in 16 KiB writes, counting in `backend.written` (backpressure)
  /upload            read the body chunk by chunk, recording sizes in `backend.uploads`
  /early             answer 413 at once without reading the body
  /close             answer and close the connection (no keep-alive)
"""

from __future__ import annotations

import contextlib
import datetime
import json
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

import anyio
import anyio.abc
import h11
import sniffio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from anyio.streams.tls import TLSStream

from a3s_gateway.compiler.ir import Node
from a3s_gateway.compiler.request_target import PathPolicy
from a3s_gateway.compiler.schema import EntrypointConfig, ProxyConfig, ServiceConfig
from a3s_gateway.runtime import proxy
from a3s_gateway.runtime.api import Backend as ApiBackend
from a3s_gateway.runtime.api import Handler, Request, Response, RouteInfo
from a3s_gateway.runtime.asyncio_stream import AsyncioSocketStream, spawn_task
from a3s_gateway.runtime.callback_path import DirectRoute
from a3s_gateway.runtime.listener import HttpServer
from a3s_gateway.runtime.router import RouteMatch, RouterTable, compile_rule
from a3s_gateway.runtime.service import HttpService, ServiceState
from a3s_gateway.runtime.upstream.client import UpstreamClient
from a3s_gateway.stdlib.base import BuildContext


@dataclass
class Seen:
    method: str
    target: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)


@dataclass
class Ex:
    """One request as a backend handler sees it."""

    conn: h11.Connection
    stream: Any
    request: h11.Request
    query: dict[str, str]

    async def send(self, *events: Any) -> None:
        await self.stream.send(b"".join(self.conn.send(e) or b"" for e in events))

    async def head(self, status: int = 200, **headers: str) -> None:
        await self.send(
            h11.Response(status_code=status, headers=[(k.replace("_", "-"), v) for k, v in headers.items()])
        )

    async def respond(self, status: int, body: bytes, **headers: str) -> None:
        await self.head(status, content_length=str(len(body)), **headers)
        await self.send(h11.Data(data=body), h11.EndOfMessage())


@dataclass
class Backend:
    """A scripted HTTP/1.1 upstream on 127.0.0.1 (optionally TLS)."""

    ssl_context: ssl.SSLContext | None = None
    port: int = 0
    host: str = "127.0.0.1"  # any loopback address (127.0.0.2 ...: a second "machine" on one port)
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    written: int = 0
    uploads: list[int] = field(default_factory=list)
    closed_streams: int = 0
    abandoned: int = 0
    _steps: tuple[MemoryObjectSendStream[None], MemoryObjectReceiveStream[None]] | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        host = "localhost" if self.ssl_context else self.host
        return f"{scheme}://{host}:{self.port}"

    async def step(self) -> None:
        """Let an SSE stream send its next event."""
        assert self._steps is not None
        await self._steps[0].send(None)

    async def _serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        self._steps = anyio.create_memory_object_stream[None](100)
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        task_status.started()
        await listener.serve(self._connection)

    async def _connection(self, stream: anyio.abc.ByteStream) -> None:
        self.connections += 1
        if self.ssl_context is not None:
            try:
                stream = await TLSStream.wrap(stream, server_side=True, ssl_context=self.ssl_context)
            except Exception:
                return
        conn = h11.Connection(h11.SERVER)
        try:
            async with stream:
                while await self._one(conn, stream):
                    conn.start_next_cycle()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, h11.ProtocolError):
            self.closed_streams += 1

    async def _one(self, conn: h11.Connection, stream: anyio.abc.ByteStream) -> bool:
        request = await _next(conn, stream)
        if not isinstance(request, h11.Request):
            return False
        target = request.target.decode()
        self.seen.append(
            Seen(request.method.decode(), target, [(k.decode(), v.decode()) for k, v in request.headers])
        )
        url = urlsplit(target)
        ex = Ex(conn, stream, request, {k: v[0] for k, v in parse_qs(url.query).items()})
        await getattr(self, "_do_" + url.path.strip("/").replace("-", "_"), self._do_json)(ex)
        return conn.our_state is h11.DONE and conn.their_state is h11.DONE

    async def _body(self, ex: Ex) -> bytes:
        data = b""
        while True:
            ev = await _next(ex.conn, ex.stream)
            if not isinstance(ev, h11.Data):
                return data
            data += ev.data
            self.uploads.append(len(ev.data))

    async def _do_json(self, ex: Ex) -> None:
        body = await self._body(ex)
        payload = {
            "method": ex.request.method.decode(),
            "target": ex.request.target.decode(),
            "headers": [[k.decode(), v.decode()] for k, v in ex.request.headers],
            "body": body.decode("latin-1"),
        }
        extra = {"connection": "close"} if ex.query.get("close") else {}
        data = json.dumps(payload).encode()
        await ex.respond(
            200, data, content_type="application/json", keep_alive="timeout=5", x_backend="yes", **extra
        )

    async def _do_close(self, ex: Ex) -> None:
        await self._body(ex)
        await ex.respond(200, b"bye", connection="close")

    async def _do_chunked(self, ex: Ex) -> None:
        await self._body(ex)
        await ex.head(200, transfer_encoding="chunked")
        for i in range(int(ex.query.get("n", "3"))):
            await ex.send(h11.Data(data=b"chunk%d;" % i))
        await ex.send(h11.EndOfMessage())

    async def _do_sse(self, ex: Ex) -> None:
        assert self._steps is not None
        await self._body(ex)
        await ex.head(200, content_type="text/event-stream")
        for i in range(int(ex.query.get("n", "3"))):
            if i:
                await self._steps[1].receive()
            await ex.send(h11.Data(data=b"data: event %d\n\n" % i))
        await ex.send(h11.EndOfMessage())

    async def _wait_abandoned(self, ex: Ex) -> None:
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            await ex.stream.receive()  # returns when the gateway gives up on us and closes
        self.abandoned += 1
        raise anyio.EndOfStream

    async def _do_stall(self, ex: Ex) -> None:
        await self._body(ex)
        await self._wait_abandoned(ex)

    async def _do_stall_body(self, ex: Ex) -> None:
        await self._body(ex)
        await ex.head(200, transfer_encoding="chunked")
        await ex.send(h11.Data(data=b"first"))
        await self._wait_abandoned(ex)

    async def _do_drop(self, ex: Ex) -> None:
        """Answer with keep-alive, then close the idle connection (a server keep-alive timer)."""
        await self._body(ex)
        await ex.respond(200, b"dropped")
        await ex.stream.aclose()
        raise anyio.ClosedResourceError

    async def _do_malformed(self, ex: Ex) -> None:
        await self._body(ex)
        await ex.stream.send(b"HTTP/1.1 two hundred OK\r\nfoo\r\n\r\n")
        await ex.stream.aclose()

    async def _do_cut(self, ex: Ex) -> None:
        await self._body(ex)
        await ex.stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
        await ex.stream.aclose()

    async def _do_big(self, ex: Ex) -> None:
        await self._body(ex)
        size = int(ex.query["size"])
        await ex.head(200, content_length=str(size))
        block = b"x" * 16384
        while self.written < size:
            piece = block[: size - self.written]
            await ex.send(h11.Data(data=piece))
            self.written += len(piece)
        await ex.send(h11.EndOfMessage())

    async def _do_upload(self, ex: Ex) -> None:
        body = await self._body(ex)
        await ex.respond(200, b"%d" % len(body))

    async def _do_early(self, ex: Ex) -> None:
        await ex.respond(413, b"too big", connection="close")


async def _next(conn: h11.Connection, stream: anyio.abc.ByteStream) -> Any:
    while True:
        ev = conn.next_event()
        if ev is h11.NEED_DATA:
            try:
                conn.receive_data(await stream.receive())
            except anyio.EndOfStream:
                conn.receive_data(b"")
            continue
        return ev


@asynccontextmanager
async def backend(
    ssl_context: ssl.SSLContext | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[Backend]:
    server = Backend(ssl_context, port, host)
    async with anyio.create_task_group() as tg:
        await tg.start(server._serve)
        yield server
        tg.cancel_scope.cancel()


class ProxyTo:
    """A dispatch that forwards every request to `url`, as the service layer would.

    On asyncio and uvloop, `gateway()` also lets the callback path (runtime/callback_path.py)
    serve its requests: `direct()` is the route to a one-server service on the same client and
    proxy config, behind a real router table (one catch-all router), so that the data-plane
    tests run both paths. On trio every request takes the general path, through `__call__`."""

    def __init__(self, url: str, client: UpstreamClient, config: ProxyConfig | None = None) -> None:
        self.url = url
        self.client = client
        self.config = config or ProxyConfig()
        self.target = ApiBackend(url)

    async def __call__(self, request: Request) -> Response:
        return await proxy.forward(request, self.target, self.config, self.client)

    def direct_source(self, entrypoint: EntrypointConfig) -> Any:
        """What the callback path reads per request: a one-router table whose route is direct."""
        node = Node.build(
            "service",
            "proxied",
            ServiceConfig.model_validate({"load_balancer": {"servers": [{"url": self.url}]}}),
        )
        service = HttpService(node, ServiceState(), BuildContext(node.id, node.name), forward=self._forward)
        route = DirectRoute.of(service, self.client, self.config, ())
        match = RouteMatch(RouteInfo("test", "all", "proxied"), self, 0, route)
        table = RouterTable(
            "test", [(compile_rule("PathPrefix(`/`)"), match)], PathPolicy.from_config(entrypoint.http)
        )
        graph = _OneTable(table)

        def current() -> tuple[Any, str, None, bool]:
            return graph, "test", None, False

        return current

    async def _forward(self, request: Request, backend: ApiBackend) -> Response:
        return await proxy.forward(request, backend, self.config, self.client)


class _OneTable:
    """The part of a graph generation the callback path uses: its table, count and meters."""

    def __init__(self, table: RouterTable) -> None:
        self.tables = {"test": table}
        self.active = 0
        self.meters = None

    def release(self) -> None:
        self.active -= 1


def proxy_to(url: str, client: UpstreamClient, config: ProxyConfig | None = None) -> ProxyTo:
    """A dispatch that forwards every request to `url` (see `ProxyTo`)."""
    return ProxyTo(url, client, config)


@asynccontextmanager
async def gateway(
    dispatch: Handler,
    ssl_context: ssl.SSLContext | None = None,
    probe_after: float = 1.0,
    **entrypoint: Any,
) -> AsyncIterator[HttpServer]:
    """An HttpServer on 127.0.0.1:<free port>; `server.addresses[0][1]` is its port."""
    config = EntrypointConfig(address="127.0.0.1:0", **entrypoint)
    extra: dict[str, Any] = {}
    if isinstance(dispatch, ProxyTo) and sniffio.current_async_library() == "asyncio":
        # As the launcher does on asyncio: the loop-native stream, and with it the callback path.
        extra = {"stream_factory": AsyncioSocketStream, "spawn": spawn_task}
        extra["direct"] = dispatch.direct_source(config)
    server = HttpServer(config, dispatch, ssl_context=ssl_context, probe_after=probe_after, **extra)
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        yield server
        tg.cancel_scope.cancel()


B = TypeVar("B")


@dataclass
class Stack(Generic[B]):
    """A backend, the gateway entrypoint in front of it, and the upstream client between them."""

    backend: B
    server: HttpServer
    client: UpstreamClient

    @property
    def port(self) -> int:
        return self.server.addresses[0][1]


# (connection number from 1, request head) -> the bytes to write back, in one send.
Answer = Callable[[int, bytes], bytes]


class _Corked(anyio.abc.ByteStream):
    """The backend's socket under TLS: while corked, writes are held and leave in one send,
    so two TLS records (a response and what follows it) reach the gateway in one read."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.held: bytes | None = None

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self.stream.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        if self.held is None:
            await self.stream.send(item)
        else:
            self.held += item

    async def flush(self) -> None:
        held, self.held = self.held, None
        if held:
            await self.stream.send(held)

    async def send_eof(self) -> None:
        await self.stream.send_eof()

    async def aclose(self) -> None:
        await self.stream.aclose()


@dataclass
class ScriptedBackend:
    """A raw-socket HTTP/1.1 backend that writes exactly the bytes a test scripts, so it can do
    what a broken or hostile server does. Each request head is kept in `heads` as received
    (a Content-Length body is read and dropped) and gets `answer(connection, head)`. With TLS,
    a `tail` answer goes out as a second TLS record."""

    answer: Answer
    ssl_context: ssl.SSLContext | None = None
    tail: Callable[[int, bytes], bytes] = lambda connection, head: b""
    port: int = 0
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    streams: list[anyio.abc.ByteStream] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}" if self.ssl_context else f"http://127.0.0.1:{self.port}"

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        task_status.started()
        await listener.serve(self._connection)

    async def _connection(self, raw: anyio.abc.ByteStream) -> None:
        self.connections += 1
        number = self.connections
        corked = _Corked(raw)
        stream: anyio.abc.ByteStream = corked
        if self.ssl_context is not None:
            stream = await TLSStream.wrap(corked, server_side=True, ssl_context=self.ssl_context)
        self.streams.append(stream)
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    buffer += await stream.receive()
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                self.heads.append(head)
                length = _content_length(head)
                while len(buffer) < length:
                    buffer += await stream.receive()
                buffer = buffer[length:]
                corked.held = b""
                await stream.send(self.answer(number, head))
                if tail := self.tail(number, head):
                    await stream.send(tail)
                await corked.flush()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, ssl.SSLError):
            pass
        finally:
            await anyio.aclose_forcefully(stream)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def json(self) -> Any:
        return json.loads(self.body)


class RawClient:
    """A byte-level HTTP/1.1 client: send anything, read responses one by one."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.buffer = b""

    @classmethod
    @asynccontextmanager
    async def connect(cls, port: int) -> AsyncIterator[RawClient]:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        async with stream:
            yield cls(stream)

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    async def _fill(self) -> bool:
        try:
            self.buffer += await self.stream.receive()
            return True
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return False

    async def read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            if not await self._fill():
                raise EOFError(f"connection closed before {marker!r}; got {self.buffer!r}")
        out, self.buffer = self.buffer.split(marker, 1)
        return out + marker

    async def read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not await self._fill():
                raise EOFError("connection closed mid-body")
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out

    async def read_head(self) -> tuple[int, list[tuple[str, str]]]:
        head = (await self.read_until(b"\r\n\r\n")).decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = [
            (k.strip().lower(), v.strip()) for k, v in (line.split(":", 1) for line in lines[1:] if line)
        ]
        return status, headers

    async def read_chunk(self) -> bytes | None:
        """One chunk of a chunked body exactly as framed on the wire; None at the last chunk."""
        size = int((await self.read_until(b"\r\n")).split(b";")[0], 16)
        data = await self.read_exactly(size + 2)
        if size == 0:
            return None
        return data[:-2]

    async def read_response(self, method: str = "GET") -> Reply:
        status, headers = await self.read_head()
        reply = Reply(status, headers, b"")
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return reply
        length = reply.header("content-length")
        if length is not None:
            reply.body = await self.read_exactly(int(length))
        elif reply.header("transfer-encoding") == "chunked":
            while (chunk := await self.read_chunk()) is not None:
                reply.body += chunk
        else:
            while await self._fill():
                pass
            reply.body, self.buffer = self.buffer, b""
        return reply

    async def at_eof(self) -> bool:
        """Whether the server closed the connection (after any buffered bytes)."""
        return not self.buffer and not await self._fill()


async def get(port: int, target: str = "/json", headers: str = "", body: bytes = b"") -> Reply:
    """One request on a fresh connection."""
    async with RawClient.connect(port) as client:
        method = "POST" if body else "GET"
        length = f"content-length: {len(body)}\r\n" if body else ""
        await client.send(
            f"{method} {target} HTTP/1.1\r\nhost: gw.test\r\n{headers}{length}\r\n".encode() + body
        )
        return await client.read_response(method)


@dataclass
class Certs:
    ca_file: str
    # name -> (cert_file, key_file)
    leaves: dict[str, tuple[str, str]]


def make_certs(directory: Any, names: list[str]) -> Certs:
    """A private CA and one leaf certificate per DNS name, as PEM files in `directory`."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def write(name: str, data: bytes) -> str:
        path = directory / name
        path.write_bytes(data)
        return str(path)

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a3s test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaves = {}
    for name in names:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        leaves[name] = (
            write(f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM)),
            write(f"{name}.key", pem_key(key)),
        )
    return Certs(write("ca.crt", ca.public_bytes(serialization.Encoding.PEM)), leaves)


def client_identity(directory: Any, name: str = "alice") -> tuple[str, str, str]:
    """A client CA and a client certificate (clientAuth) it signed: (ca, cert, key) PEM files,
    named after `name` (two identities in one directory have two CAs)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} client CA")])

    def build(subject: x509.Name, public: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=7))
        )

    ca = build(ca_name, ca_key.public_key()).add_extension(
        x509.BasicConstraints(ca=True, path_length=None), critical=True
    )
    leaf = build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), key.public_key())
    leaf = leaf.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    folder = Path(directory)
    paths = (folder / f"{name}-ca.crt", folder / f"{name}.crt", folder / f"{name}.key")
    paths[0].write_bytes(ca.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(paths[0]), str(paths[1]), str(paths[2])
