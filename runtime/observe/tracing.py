"""Tracing on the request path: the trace a request belongs to, its spans, and the context sent up.

`Tracing` is built per generation from `tracing { }`. The gateway's dispatcher calls `start` for
every request (only when tracing is configured: with it off the request path reads one
attribute and does nothing else); it reads the request's context (`protocols/trace_context.py`),
takes the sampling decision (the parent's when it has one, else `sample_rate`) and keeps a
`RequestTrace` in `request.state[TRACE]`. Every upstream attempt goes through `traced_forward`,
which the graph binds in front of the proxy when tracing is configured: it opens the attempt's
span and sends the backend a context whose parent is that span.

Spans, when a recorder (the OTLP exporter, `otel.py`) is configured and the request is sampled:

- the **server span** (SpanKind SERVER, named by the method): the whole exchange, from the
  request's arrival to the end of its response body;
- the **chain span** (INTERNAL, `router <name>`): routing and the router's middleware chain, up
  to the response head, child of the server span;
- one **client span** per upstream attempt (CLIENT, named by the method), child of the chain
  span: a retried request, or one moved to another backend after a refused connect, has one
  per attempt, with `http.request.resend_count`.

Without a recorder, or for an unsampled request, no span is recorded; each attempt still gets a
fresh span id, which the backend sees as its parent, and the sampling decision is passed on.
Attributes follow OpenTelemetry's HTTP semantic conventions; the query string, request headers
and credentials are never recorded (`url.path` and `url.full` carry no query).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio

from ...compiler.schema import TracingConfig
from ..api import Backend, Headers, Request, Response
from ..body_end import on_body_end
from ..errors import GatewayError
from ..protocols.trace_context import Incoming, Propagation, SpanContext, decide, new_span_id, new_trace_id
from ..state import StateTxn
from ..upstream.pool import parse_origin

__all__ = ["TRACE", "Recorder", "RequestTrace", "Span", "Tracing", "prepare_tracing", "traced_forward"]

# request.state key of the request's RequestTrace.
TRACE = "a3s.trace"

Attributes = dict[str, Any]


class Span(Protocol):
    """A recorded span (otel.py): ids in hex, attributes, ended once."""

    trace_id: str
    span_id: str

    def set(self, key: str, value: Any) -> None: ...

    def rename(self, name: str) -> None: ...

    def end(self, error: str | None = None) -> None: ...


class Recorder(Protocol):
    """What records spans: the OTLP exporter (otel.py), state kept across reloads."""

    def start_server(self, incoming: Incoming, name: str, attributes: Attributes) -> Span: ...

    def start_child(self, parent: Span, name: str, kind: str, attributes: Attributes) -> Span: ...

    def hold(self) -> Callable[[], None]:
        """Count one request whose spans are open; call the result when its last span ended."""
        ...


class Tracing:
    """The tracing of one generation: its formats, its sampling and its recorder (or None)."""

    def __init__(
        self, config: TracingConfig, recorder: Recorder | None, rng: random.Random | None = None
    ) -> None:
        self.config = config
        self.propagation = Propagation(config.propagation)
        self.recorder = recorder
        self._rng = rng or random.Random()

    def start(self, request: Request, entrypoint: str) -> RequestTrace:
        """The request's trace, kept in `request.state[TRACE]`; its spans start now."""
        incoming = self.propagation.extract(request.headers.raw)
        sampled = decide(incoming, self.config.sample_rate, self._rng)
        trace = RequestTrace(self, incoming, sampled)
        if sampled and self.recorder is not None:
            trace.record(self.recorder, request, entrypoint)
        request.state[TRACE] = trace
        return trace


class RequestTrace:
    """One request's trace: its id, its spans (when recorded) and its upstream attempts."""

    __slots__ = (
        "_release",
        "attempts",
        "chain",
        "context",
        "incoming",
        "parent_id",
        "server",
        "tracing",
    )

    def __init__(self, tracing: Tracing, incoming: Incoming, sampled: bool) -> None:
        self.tracing = tracing
        self.incoming = incoming
        trace_id = incoming.trace_id or new_trace_id(tracing._rng)
        # What the next hop inherits; its span id is replaced by each attempt's.
        self.context = SpanContext(
            trace_id, incoming.span_id or "", sampled, incoming.tracestate, incoming.debug
        )
        # The span the attempts are children of: the chain span when recorded, else the caller's.
        self.parent_id: str | None = incoming.span_id
        self.server: Span | None = None
        self.chain: Span | None = None
        self.attempts = 0
        self._release: Callable[[], None] | None = None

    @property
    def trace_id(self) -> str:
        return self.context.trace_id

    def record(self, recorder: Recorder, request: Request, entrypoint: str) -> None:
        """Start the server and chain spans (a sampled request, with a recorder)."""
        host = request.host
        attributes: Attributes = {
            "http.request.method": request.method,
            "url.path": request.path,
            "url.scheme": request.scheme,
            "network.protocol.version": request.http_version,
            "client.address": request.client_ip,
            "server.address": host.rpartition(":")[0] if host.endswith(_PORT_END) else host,
            "a3s.entrypoint": entrypoint,
            "a3s.request_id": request.request_id,
        }
        agent = request.headers.get("user-agent")
        if agent:
            attributes["user_agent.original"] = agent
        self._release = recorder.hold()
        self.server = recorder.start_server(self.incoming, request.method, attributes)
        self.chain = recorder.start_child(self.server, "router", "internal", {"a3s.entrypoint": entrypoint})
        self.context = SpanContext(
            self.server.trace_id, self.chain.span_id, True, self.context.tracestate, self.context.debug
        )
        self.parent_id = self.chain.span_id

    def responded(self, request: Request, response: Response) -> None:
        """The response head is ready: the chain span ends, the server span at the body's end."""
        server, chain = self.server, self.chain
        if server is None or chain is None:
            return
        route = request.route
        if route is not None:
            chain.rename(f"router {route.router}")
            for span in (chain, server):
                span.set("a3s.router", route.router)
                span.set("a3s.service", route.service)
            chain.set("a3s.middlewares", list(route.middlewares))
        chain.end(_server_error(response.status))
        server.set("http.response.status_code", response.status)
        # The retry middleware's count, as the access log's retry_attempts (the head is final).
        server.set("a3s.retry_attempts", request.state.get("retry_attempt", 0))
        response.body = on_body_end(response.body, functools.partial(self._ended, response.status))

    def cancelled(self) -> None:
        """The request was cancelled before its response head (the client left, a shutdown)."""
        if self.chain is not None:
            self.chain.end("cancelled")
        self._finish("cancelled")

    def _ended(self, status: int, error: BaseException | None) -> None:
        self._finish(_server_error(status) or (type(error).__name__ if error is not None else None))

    def _finish(self, error: str | None) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.end(error)
            if self._release is not None:
                self._release()

    def attempt(self, request: Request, backend: Backend) -> tuple[Span | None, list[tuple[bytes, bytes]]]:
        """A new upstream attempt: its span (when recorded) and the header fields naming it."""
        resends, self.attempts = self.attempts, self.attempts + 1
        span: Span | None = None
        if self.chain is not None and self.tracing.recorder is not None:
            attributes = _client_attributes(request, backend, resends)
            span = self.tracing.recorder.start_child(self.chain, request.method, "client", attributes)
            span_id = span.span_id
        else:
            span_id = new_span_id(self.tracing._rng)
        injected = self.tracing.propagation.inject(self.context.child(span_id), self.parent_id)
        return span, injected


_PORT_END = tuple(f":{d}" for d in "0123456789")


def _client_attributes(request: Request, backend: Backend, resends: int) -> Attributes:
    origin, base_path = parse_origin(backend.url)  # cached: the proxy parses the same URL
    attributes: Attributes = {
        "http.request.method": request.method,
        "server.address": origin.host,
        "server.port": origin.port,
        "url.full": f"{origin}{base_path}{request.path}",  # never the query: clients put keys there
    }
    if resends:
        attributes["http.request.resend_count"] = resends
    return attributes


def _server_error(status: int) -> str | None:
    """A server span is an error on 5xx only (semantic conventions: 4xx is the client's)."""
    return str(status) if status >= 500 else None


def _client_error(status: int) -> str | None:
    return str(status) if status >= 400 else None


async def traced_forward(
    forward: Callable[[Request, Backend], Awaitable[Response]], request: Request, backend: Backend
) -> Response:
    """`forward` with the attempt's span around it and its context in the request sent up.

    The client's own propagation fields are replaced by ours; the request's headers are put back
    afterwards, so a retry or the access log sees them as they came."""
    trace: RequestTrace | None = request.state.get(TRACE)
    if trace is None:  # not dispatched through the gateway (a test's handler)
        return await forward(request, backend)
    span, injected = trace.attempt(request, backend)
    original = request.headers
    fields = trace.tracing.propagation.fields
    headers = Headers()
    headers.raw = [pair for pair in original.raw if pair[0] not in fields]
    headers.raw += injected
    request.headers = headers
    try:
        response = await forward(request, backend)
    except BaseException as exc:
        if span is not None:
            span.end(exc.reason if isinstance(exc, GatewayError) else type(exc).__name__)
        raise
    finally:
        request.headers = original
    if span is not None:
        span.set("http.response.status_code", response.status)
        response.body = on_body_end(response.body, functools.partial(_attempt_ended, span, response.status))
    return response


def _attempt_ended(span: Span, status: int, error: BaseException | None) -> None:
    span.end(_client_error(status) or (type(error).__name__ if error is not None else None))


async def prepare_tracing(config: TracingConfig | None, txn: StateTxn) -> Tracing | None:
    """The tracing a configuration asks for, or None when it has no `tracing { }` block.

    Its recorder (the OTLP exporter) is state of the generation being built, keyed by the
    export settings: a reload that keeps them keeps the exporter and its queue; new settings
    build a new one here, beside the running one, and the old one is retired with the old
    generation (`OtlpRecorder.aclose`: after its open spans, flushed)."""
    if config is None:
        return None
    recorder: Recorder | None = None
    if config.otlp is not None:
        export = (
            config.service_name,
            sorted(config.resource_attributes.items()),
            config.otlp.model_dump_json(),
        )
        recorder = await txn.aobtain(
            "tracing:otlp", repr(export), functools.partial(_new_recorder, config), _close
        )
    return Tracing(config, recorder)


async def _new_recorder(config: TracingConfig) -> Recorder:
    from .otel import OtlpRecorder  # the `otel` extra: imported only when export is configured

    # Importing the SDK and starting its export thread take a while: not on the event loop.
    recorder: Recorder = await anyio.to_thread.run_sync(OtlpRecorder, config)
    return recorder


async def _close(recorder: Any) -> None:
    await recorder.aclose()
