"""Keep-alive connection pools to upstream servers, one per origin (scheme, host, port).

Idle connections are reused last-in first-out: the most recently used one is the least likely
to have been closed by the server's keep-alive timer (uvicorn's is 5 s). A connection is parked
only when nothing follows its response (the exchange checks the adapter's buffer): a byte no
request asked for must never reach the next client. Before reuse, the stream says whether input
arrived meanwhile (EOF and any unexpected byte both mean the connection is stale: a poll(2) on
the readiness-wait stream, a look at the buffer on the asyncio stream, and under TLS the records
it already read), which catches almost every stale connection without sending anything.
Connections idle longer than `keepalive_expiry` are closed when the pool is next used, so there
is no background task.

`max_connections` caps the connections checked out at once (a request waits for a free one
up to its connect timeout, then gets 503); `max_idle` caps what is kept for reuse.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit

import anyio
import anyio.abc
from anyio.streams.tls import TLSAttribute, TLSStream

from ..errors import ServiceUnavailable, UpstreamConnectError, UpstreamConnectTimeout
from ..netio import connect_tcp
from ..protocols.http1_choice import HTTP1
from ..tls import default_client_context

__all__ = ["ConnectionPool", "Origin", "PoolStatistics", "UpstreamConnection", "parse_origin"]

# h2c: HTTP/2 with prior knowledge on a plain connection (RFC 9113 §3.3), e.g. gRPC servers.
_DEFAULT_PORTS = {"http": 80, "https": 443, "h2c": 80}


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int
    # What goes in Host: the port only when it is not the scheme's default. Computed once
    # (parse_origin is cached), since forward() needs it on every request.
    authority: bytes = field(default=b"", compare=False)

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority.decode()}"


def _authority(scheme: str, host: str, port: int) -> bytes:
    bracketed = f"[{host}]" if ":" in host else host
    if port == _DEFAULT_PORTS[scheme]:
        return bracketed.encode("idna")
    return f"{bracketed}:{port}".encode("idna")


@lru_cache(maxsize=4096)
def parse_origin(url: str) -> tuple[Origin, str]:
    """`(origin, base_path)` of a server URL; base_path ("" or "/prefix") is prepended to targets."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"upstream URL must be http://, https:// or h2c:// with a host, got {url!r}")
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    origin = Origin(parts.scheme, parts.hostname, port, _authority(parts.scheme, parts.hostname, port))
    return origin, parts.path.rstrip("/")


class UpstreamConnection:
    """A socket to one origin plus the HTTP/1.1 client adapter that speaks on it."""

    __slots__ = ("adapter", "alpn", "idle_since", "looks_closed", "reused", "stream")

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.adapter = HTTP1.client()
        self.idle_since = 0.0
        self.reused = False
        # What TLS ALPN picked ("h2" hands the connection to the HTTP/2 pool).
        self.alpn: str | None = stream.extra(TLSAttribute.alpn_protocol, None)
        # `looks_closed()`: True when a parked connection has something to read: the server's
        # EOF, or bytes no request asked for (junk, the rest of a response), which must never be
        # read as the next client's response. Like httpcore and Go's transport: a readable idle
        # connection is not reusable. Chosen once per connection, so that the check before each
        # reuse is a single call (on a plain connection, the stream's own `input_pending`).
        self.looks_closed: Callable[[], bool] = _input_check(stream)

    async def aclose(self) -> None:
        await anyio.aclose_forcefully(self.stream)


def _input_check(stream: anyio.abc.ByteStream) -> Callable[[], bool]:
    """`UpstreamConnection.looks_closed` for `stream`: the socket-level stream (under TLS, the
    one TLSStream reads from) tells stale input, and under TLS so does what TLS already read."""
    if not isinstance(stream, TLSStream):
        input_pending: Callable[[], bool] | None = getattr(stream, "input_pending", None)
        return input_pending if input_pending is not None else _no_input
    tls_pending = _tls_pending(stream)
    raw_pending: Callable[[], bool] | None = getattr(stream.transport_stream, "input_pending", None)
    if raw_pending is None:
        return tls_pending
    return lambda: tls_pending() or raw_pending()


def _no_input() -> bool:
    """A stream without `input_pending` cannot tell: it looks open."""
    return False


def _tls_pending(stream: TLSStream) -> Callable[[], bool]:
    """Whether TLS holds input already taken from the socket: a record not yet decrypted (the
    server wrote its response and more, in two records that arrived in one read), or
    decrypted bytes not yet read."""
    ssl_object = stream.extra(TLSAttribute.ssl_object)
    read_bio = getattr(stream, "_read_bio", None)  # anyio keeps it private; no public view of it

    def pending() -> bool:
        return bool(ssl_object.pending()) or (read_bio is not None and read_bio.pending > 0)

    return pending


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    origin: str
    idle: int
    active: int
    connects: int
    reuses: int


class ConnectTiming:
    """Who hears how long each new upstream connection took to open (TCP and TLS): the
    metrics' histogram child of the service, set when a reload commits; None when off."""

    __slots__ = ("observe",)

    def __init__(self) -> None:
        self.observe: Callable[[float], None] | None = None


class ConnectionPool:
    def __init__(
        self,
        origin: Origin,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_idle: int = 64,
        max_connections: int | None = None,
        keepalive_expiry: float = 60.0,
        timing: ConnectTiming | None = None,
    ) -> None:
        self.origin = origin
        self._timing = timing
        self._ssl = (ssl_context or default_client_context()) if origin.tls else None
        self._idle: list[UpstreamConnection] = []
        self._max_idle = max_idle
        self._limit = anyio.Semaphore(max_connections) if max_connections else None
        self._expiry = keepalive_expiry
        self._active = self._connects = self._reuses = 0
        self._closed = False

    def take_idle(self) -> UpstreamConnection | None:
        """A parked connection that is still good, without waiting (None: call `acquire`).

        The usual case on a busy origin, so it is a plain call: no coroutine per request."""
        if self._limit is not None or not self._idle:
            return None
        stale_before = time.monotonic() - self._expiry
        conn = self._idle[-1]
        if conn.idle_since <= stale_before or conn.looks_closed():
            return None  # acquire() closes it (and any other stale one)
        self._idle.pop()
        conn.reused = True
        self._reuses += 1
        self._active += 1
        return conn

    async def acquire(self, connect_timeout: float) -> UpstreamConnection:
        """A live connection: a parked one if any is still good, else a new one."""
        if self._limit is not None:
            await self._wait_for_slot(connect_timeout)
        try:
            conn = await self._reuse_or_connect(connect_timeout)
        except BaseException:
            if self._limit is not None:
                self._limit.release()
            raise
        self._active += 1
        return conn

    async def _wait_for_slot(self, timeout: float) -> None:
        assert self._limit is not None
        with anyio.move_on_after(timeout):
            await self._limit.acquire()
            return
        raise ServiceUnavailable(f"{self.origin}: upstream connection limit reached")

    async def _reuse_or_connect(self, timeout: float) -> UpstreamConnection:
        idle = self._idle
        if idle:
            stale_before = time.monotonic() - self._expiry
            while idle:
                conn = idle.pop()
                if conn.idle_since > stale_before and not conn.looks_closed():
                    conn.reused = True
                    self._reuses += 1
                    return conn
                await conn.aclose()
        return await self._connect(timeout)

    async def connect(self, timeout: float) -> UpstreamConnection:
        """A new connection outside the pool's accounting (the HTTP/2 pool keeps its own)."""
        return await self._connect(timeout)

    async def _connect(self, timeout: float) -> UpstreamConnection:
        origin = self.origin
        observe = self._timing.observe if self._timing is not None else None
        started = time.monotonic() if observe is not None else 0.0
        try:
            with anyio.fail_after(timeout):
                stream: anyio.abc.ByteStream = await connect_tcp(origin.host, origin.port)
                if self._ssl is not None:
                    stream = await TLSStream.wrap(
                        stream, hostname=origin.host, ssl_context=self._ssl, standard_compatible=False
                    )
        except TimeoutError:
            raise UpstreamConnectTimeout(f"connecting to {origin} timed out after {timeout:g}s") from None
        except ssl.SSLError as exc:
            detail = getattr(exc, "verify_message", None) or exc.reason or exc
            raise UpstreamConnectError(f"TLS handshake with {origin} failed: {detail}") from None
        except anyio.EndOfStream:
            raise UpstreamConnectError(f"TLS handshake with {origin} failed: connection closed") from None
        except anyio.BrokenResourceError as exc:
            cause = exc.__cause__
            detail = getattr(cause, "reason", None) or cause or "connection closed"
            raise UpstreamConnectError(f"TLS handshake with {origin} failed: {detail}") from None
        except OSError as exc:
            raise UpstreamConnectError(f"cannot connect to {origin}: {exc.strerror or exc}") from None
        self._connects += 1
        if observe is not None:
            observe(time.monotonic() - started)
        return UpstreamConnection(stream)

    def park(self, conn: UpstreamConnection) -> bool:
        """Give back a connection whose exchange ended cleanly, parked for reuse; False when
        the pool has no room for it (then `discard` it)."""
        if self._closed or len(self._idle) >= self._max_idle:
            return False
        self._active -= 1  # _checkin inlined: parking is once per request
        if self._limit is not None:
            self._limit.release()
        conn.idle_since = time.monotonic()
        self._idle.append(conn)
        return True

    async def release(self, conn: UpstreamConnection) -> None:
        """Give back a connection whose exchange ended cleanly; it is parked for reuse."""
        if not self.park(conn):
            await self.discard(conn)

    def detach(self, conn: UpstreamConnection) -> None:
        """Give back a connection's slot but not the connection: someone else owns it now
        (the HTTP/2 pool after ALPN picked h2, a WebSocket relay after a 101)."""
        self._checkin()

    async def discard(self, conn: UpstreamConnection) -> None:
        """Give back a connection that cannot be reused (error, early close, half-sent request)."""
        self._checkin()
        await conn.aclose()

    def drop(self, conn: UpstreamConnection) -> None:
        """`discard`, for a stream that closes without waiting (the callback path's)."""
        self._checkin()
        close = getattr(conn.stream, "close", None)
        if close is not None:
            close()

    def _checkin(self) -> None:
        self._active -= 1
        if self._limit is not None:
            self._limit.release()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.aclose()

    def statistics(self) -> PoolStatistics:
        return PoolStatistics(str(self.origin), len(self._idle), self._active, self._connects, self._reuses)
