"""The API that node kinds (stdlib/) program against: requests, responses, handlers.

A middleware is `async def __call__(request, next) -> Response`; a service is a `Handler`.
Bodies are async iterators of byte chunks in both directions and are never buffered by the
runtime: the connection writes each response chunk as it arrives and reads the next request
chunk only when the upstream side asks for it, so a slow peer applies backpressure end to end.

Headers are kept as `(name, value)` byte pairs with lower-case names, exactly as the protocol
adapters produce them; `Headers` offers str access on top without copying the list.

A kind that keeps live objects across reloads or runs work in the background (a scaler and its
loop) gets both from the runtime through two small protocols declared here: `KeptState` (the
state of the generation being built, keyed by node and fingerprint) and `Spawner` (tasks the
gateway owns). Kinds never import the runtime module that implements them. A kind whose state
changes in a way an operator watches (a scaler's replicas, a rollout's step) tells the gateway's
live feed through `Publish`, a function its build context carries.
"""

from __future__ import annotations

import json
import math
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass, field
from typing import Any, Protocol

from .clock import SYSTEM_CLOCK, Clock
from .errors import GatewayError

__all__ = [
    "DEFAULT_LATENCY_DECAY",
    "LATENCY_WINDOW",
    "NO_BODY",
    "NO_RECORDER",
    "SYSTEM_CLOCK",
    "Backend",
    "BodyStream",
    "Clock",
    "Closer",
    "Handler",
    "Headers",
    "KeptState",
    "LlmExchange",
    "Middleware",
    "Publish",
    "Recorder",
    "Request",
    "Response",
    "RouteInfo",
    "Spawner",
    "Upgraded",
    "empty_body",
    "iter_body",
    "no_publish",
]


def _enc(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("latin-1")


class Headers:
    """A mutable, ordered multi-map of HTTP fields. Names are case-insensitive (stored lower-case)."""

    __slots__ = ("raw",)

    def __init__(self, raw: Iterable[tuple[bytes, bytes]] | None = None) -> None:
        self.raw: list[tuple[bytes, bytes]] = list(raw) if raw is not None else []

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Headers:
        return cls((_enc(k.lower()), _enc(v)) for k, v in pairs)

    def get(self, name: str, default: str | None = None) -> str | None:
        key = _enc(name.lower())
        for k, v in self.raw:
            if k == key:
                return v.decode("latin-1")
        return default

    def get_all(self, name: str) -> list[str]:
        key = _enc(name.lower())
        return [v.decode("latin-1") for k, v in self.raw if k == key]

    def get_joined(self, name: str) -> str | None:
        """All values of a list-valued field joined with ", " (RFC 9110 §5.3), or None."""
        values = self.get_all(name)
        return ", ".join(values) if values else None

    def set(self, name: str, value: str | bytes) -> None:
        """Replace every value of `name` with one value (added at the end when new)."""
        key = _enc(name.lower())
        self.raw = [(k, v) for k, v in self.raw if k != key]
        self.raw.append((key, _enc(value)))

    def add(self, name: str, value: str | bytes) -> None:
        self.raw.append((_enc(name.lower()), _enc(value)))

    def remove(self, name: str) -> None:
        key = _enc(name.lower())
        self.raw = [(k, v) for k, v in self.raw if k != key]

    def setdefault(self, name: str, value: str | bytes) -> None:
        if name not in self:
            self.add(name, value)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = _enc(name.lower())
        return any(k == key for k, _ in self.raw)

    def items(self) -> Iterator[tuple[str, str]]:
        for k, v in self.raw:
            yield k.decode("latin-1"), v.decode("latin-1")

    def copy(self) -> Headers:
        return Headers(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def __repr__(self) -> str:
        return f"Headers({list(self.items())!r})"


class BodyStream(Protocol):
    """An async iterator of byte chunks that can be closed early (releasing its connection)."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    def __anext__(self) -> Awaitable[bytes]: ...

    async def aclose(self) -> None: ...


class _NoBody:
    """The body of a message without one; stateless, so one instance serves every message
    (the default of Request and Response: no async generator made per message)."""

    __slots__ = ()

    def __aiter__(self) -> _NoBody:
        return self

    async def __anext__(self) -> bytes:
        raise StopAsyncIteration

    async def aclose(self) -> None:
        return None


NO_BODY: BodyStream = _NoBody()


def empty_body() -> BodyStream:
    """The body of a message without one (`NO_BODY`: stateless, so shared)."""
    return NO_BODY


async def _one_chunk(data: bytes) -> AsyncGenerator[bytes, None]:
    if data:
        yield data


def iter_body(data: bytes) -> BodyStream:
    """A body stream yielding `data` once (nothing when empty)."""
    return _one_chunk(data)


@dataclass(slots=True)
class RouteInfo:
    """Which parts of the graph took the request (set by the router)."""

    entrypoint: str
    router: str
    service: str
    middlewares: tuple[str, ...] = ()


@dataclass(slots=True, eq=False)
class Request:
    """One HTTP request as it travels through the pipeline. Middlewares may change any field."""

    method: str
    target: str
    headers: Headers
    body: BodyStream = NO_BODY
    client_addr: tuple[str, int] = ("127.0.0.1", 0)
    # The address the request is attributed to: the peer, or the client named by
    # X-Forwarded-For when the peer is a trusted proxy.
    client_ip: str = "127.0.0.1"
    scheme: str = "http"
    http_version: str = "1.1"
    stream_id: int = 1
    request_id: str = ""
    # The request's Content-Length when known (None for chunked / HTTP/2 without it).
    content_length: int | None = None
    route: RouteInfo | None = None
    # Per-request scratch space for kinds (e.g. JWT claims for a rate-limit key).
    state: dict[str, Any] = field(default_factory=dict)
    # The TLS server name the client asked for, when the entrypoint terminates TLS.
    sni: str | None = None
    clock: Clock = SYSTEM_CLOCK

    @property
    def path(self) -> str:
        """The raw (still percent-encoded) path of the request target."""
        idx = self.target.find("?")
        return self.target if idx < 0 else self.target[:idx]

    @property
    def query(self) -> str:
        """The raw query string, without the leading '?', or ''."""
        idx = self.target.find("?")
        return "" if idx < 0 else self.target[idx + 1 :]

    @property
    def host(self) -> str:
        """The Host (or :authority) as sent, port included; '' when absent."""
        return self.headers.get("host") or ""

    @property
    def is_grpc(self) -> bool:
        # Asked on every proxied request: the first Content-Type's bytes, no str conversion.
        for name, value in self.headers.raw:
            if name == b"content-type":
                return value.startswith(b"application/grpc")
        return False

    @property
    def has_body(self) -> bool:
        return self.content_length != 0 and (
            self.content_length is not None or "transfer-encoding" in self.headers or self.http_version == "2"
        )


@dataclass(slots=True, eq=False)
class Response:
    """A response head plus a streamed body. `trailers` is filled in by the time the body ends."""

    status: int
    headers: Headers = field(default_factory=Headers)
    body: BodyStream = NO_BODY
    trailers: Headers | None = None
    # Set when the gateway itself produced the response (not the upstream).
    generated: bool = False
    # A 101 from the upstream: its connection, handed over (see `Upgraded`).
    upgrade: Upgraded | None = None

    @classmethod
    def json(cls, status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
        data = json.dumps(payload, separators=(",", ":")).encode()
        out = Headers.from_pairs(headers)
        out.set("content-type", "application/json")
        out.set("content-length", str(len(data)))
        return cls(status, out, iter_body(data), generated=True)

    @classmethod
    def text(cls, status: int, text: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
        data = text.encode()
        out = Headers.from_pairs(headers)
        out.setdefault("content-type", "text/plain; charset=utf-8")
        out.set("content-length", str(len(data)))
        return cls(status, out, iter_body(data), generated=True)

    @classmethod
    def from_error(cls, error: GatewayError, request_id: str = "") -> Response:
        payload = {"error": {"type": error.reason, "message": error.message, "status": error.status}}
        if request_id:
            payload["error"]["request_id"] = request_id
        return cls.json(error.status, payload, error.headers)

    async def aclose(self) -> None:
        await self.body.aclose()


@dataclass(slots=True, eq=False)
class Upgraded:
    """An upstream connection that switched protocols (a WebSocket backend's 101).

    `stream` is the raw byte stream, detached from the pool; `leftover` the bytes already read
    past the 101 head. Whoever takes it (the client connection's relay) closes it.

    The response's (empty) body is the tunnel's lifetime: the client connection closes it only
    when the relay has ended (both closed, a side dropped, an error, a stream reset, the gateway
    stopping), or at once when the 101 could not be relayed. So whatever a kind holds until a
    body ends (a queue's slot, a backend's in-flight count, the generation) lasts as long as
    the WebSocket session.
    """

    stream: Any
    leftover: bytes = b""

    async def aclose(self) -> None:
        await self.stream.aclose()


Handler = Callable[[Request], Awaitable[Response]]


class Middleware(Protocol):
    async def __call__(self, request: Request, next: Handler) -> Response: ...


LATENCY_WINDOW = 128
"""Exchanges per backend whose times give its p50 and p99 (Envoy's upstream_rq_time, per host)."""

DEFAULT_LATENCY_DECAY = 10.0
"""Seconds: the peak-EWMA's time constant when the balancer does not choose one (`ewma` does)."""


@dataclass(slots=True, eq=False)
class Backend:
    """One upstream server of a service, with the live numbers balancers and health checks use.

    `key` is stable across reloads (the server URL), so health and counters survive a reload
    that keeps the server. `in_flight` counts a request until its response body ends or the
    client goes away.
    """

    url: str
    weight: int = 1
    healthy: bool = True
    draining: bool = False
    in_flight: int = 0
    # Peak-EWMA of the time to the response head, in seconds, as of `latency_stamp` (0: never).
    latency_ewma: float = 0.0
    latency_stamp: float = 0.0
    # Which revision of the service it belongs to ("" when the service has none).
    revision: str = ""
    # The last LATENCY_WINDOW times to the response head, a ring written in place (slot
    # `exchanges % LATENCY_WINDOW`), and how many exchanges were observed in all. Quantiles are
    # computed when someone reads them (the admin API), never on the request path.
    latency_ring: list[float] = field(default_factory=lambda: [0.0] * LATENCY_WINDOW, repr=False)
    exchanges: int = 0

    @property
    def key(self) -> str:
        return self.url

    @property
    def available(self) -> bool:
        # Spelled out again in stdlib/balancers/_base.py `candidates`, which runs on every pick.
        return self.healthy and not self.draining

    def observe_latency(self, latency: float, now: float, decay: float) -> None:
        """One exchange took `latency` seconds to its response head: into the window, and folded
        into the peak-EWMA (Finagle's `PeakEwma.observe`: a slower response replaces the average
        at once, a faster one pulls it down with weight `1 - exp(-elapsed / decay)`)."""
        # Once per exchange: conditionals rather than max() calls, no allocation but the float.
        if latency < 0.0:
            latency = 0.0
        self.latency_ring[self.exchanges % LATENCY_WINDOW] = latency
        self.exchanges += 1
        if self.latency_stamp <= 0 or latency > self.latency_ewma:
            self.latency_ewma = latency
        else:
            elapsed = now - self.latency_stamp
            weight = math.exp(-elapsed / decay) if elapsed > 0.0 else 1.0
            self.latency_ewma = self.latency_ewma * weight + latency * (1.0 - weight)
        self.latency_stamp = now

    def latency_quantiles(self, *qs: float) -> list[float] | None:
        """The nearest-rank quantiles of the window's times (seconds), or None before any exchange."""
        recent = sorted(self.latency_ring[: min(self.exchanges, LATENCY_WINDOW)])
        if not recent:
            return None
        return [recent[max(0, math.ceil(q * len(recent)) - 1)] for q in qs]


# ---------------------------------------------------------------------- build-time facilities

Closer = Callable[[Any], Awaitable[None]]
"""Releases a kept object (stops its tasks, closes its connections) once no generation uses it."""


class KeptState(Protocol):
    """Long-lived objects kept across reloads, obtained while a generation is built.

    `obtain(node_id, fingerprint, create, close)` returns the object the running generation keeps
    under the same key, or a new one from `create()`. An object the next generation no longer
    obtains is retired and `close`d once the last request of the old one has ended; one that a
    failed build created is closed at once. `slot` keeps several objects under one node.

    Building must not change a kept object the running generation uses: a change to one (new
    limits for a kept scaler, starting a new scaler's loop) is registered with `on_commit` and
    applied when the reload commits, after everything that can fail has succeeded; a failed
    reload never applies it.
    """

    def obtain(
        self,
        node_id: str,
        fingerprint: str,
        create: Callable[[], Any],
        close: Closer | None = None,
        *,
        slot: str = "",
    ) -> Any: ...

    def on_commit(self, apply: Callable[[], object]) -> None:
        """Run `apply` (which must not fail) when the reload commits; never if it fails."""


class Spawner(Protocol):
    """Where a kind starts work that outlives a request (a scaler's loop), owned by the gateway.

    The task runs until the gateway stops; the kind ends it earlier itself, from the `Closer` of
    the kept object that started it. (This is the shape of anyio's `TaskGroup.start_soon`.)
    """

    def start_soon(
        self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any, name: object = None
    ) -> object: ...


class Recorder(Protocol):
    """Events a kind reports to the gateway's metrics (runtime/observe/): each call is a few
    dictionary lookups when metrics are on, and nothing when they are off. Labels are the
    names of configured things (a scaler, a service), never request data.

    State that can be read at any time (replicas, a breaker's state, a rollout's percentage) is
    not reported here: the metrics read it from the kinds' `snapshot()`s when scraped."""

    def cold_start(self, scaler: str, seconds: float) -> None:
        """A request had to wait for a first replica: it became ready `seconds` after the wait began."""

    def rollback(self, service: str) -> None:
        """A rollout of `service` was rolled back."""

    def llm_exchange(self, exchange: LlmExchange) -> None:
        """An LLM request is over (llm-keys): its status, tokens and token times."""

    def llm_fallback(self, service: str, model: str) -> None:
        """A model_router `service` sent a request for `model` (a bounded label) to a fallback."""

    def llm_store_error(self, middleware: str, failed_open: bool) -> None:
        """llm-keys `middleware` could not ask Redis (`failed_open`: it let a request through)."""

    def routing_decision(self, service: str, target: str, reason: str) -> None:
        """A routing `service` (privacy_router, kairos) sent a request to `target` for `reason`
        (a privacy level, a kairos reason: bounded words, never request data)."""


@dataclass(slots=True)
class LlmExchange:
    """One LLM request as the metrics see it. Every label is bounded by the configuration:
    `model` from stdlib/common/model_labels.py, `key` a key's name (or a bucket). Not frozen:
    a frozen dataclass's __init__ makes one object.__setattr__ call per field, per request."""

    service: str
    model: str
    key: str
    status: int
    input_tokens: int | None = None  # None: the upstream reported no usage
    output_tokens: int | None = None
    time_to_first_token: float | None = None  # seconds; streamed answers only
    time_per_output_token: float | None = None


class _NoRecorder:
    def cold_start(self, scaler: str, seconds: float) -> None:
        pass

    def rollback(self, service: str) -> None:
        pass

    def llm_exchange(self, exchange: LlmExchange) -> None:
        pass

    def llm_fallback(self, service: str, model: str) -> None:
        pass

    def llm_store_error(self, middleware: str, failed_open: bool) -> None:
        pass

    def routing_decision(self, service: str, target: str, reason: str) -> None:
        pass


NO_RECORDER: Recorder = _NoRecorder()
"""The recorder of a kind built without metrics (tests, tools, `metrics` not configured)."""


Publish = Callable[[str, Mapping[str, Any]], None]
"""`publish(event, data)`: a state change for the gateway's live feed (`GET /api/gateway/live`),
such as `publish("scale", {"service": "llm", "desired": 2, "ready": 1})`. `data` is JSON-able.
It never blocks and never raises: each watcher has a bounded queue of its own."""


def no_publish(event: str, data: Mapping[str, Any]) -> None:
    """The `Publish` of a graph built without a gateway (tests, tools): nobody listens."""
