"""Span export over OTLP/HTTP with the OpenTelemetry SDK (the `otel` extra).

Imported only when a configuration has `tracing { otlp { } }` (the compiler rejects that block
when the extra is missing, so this import does not fail at run time).

The SDK does the recording and the export: spans end on the event loop into a
`BatchSpanProcessor`, whose own thread batches them and POSTs them as protobuf to the
collector, so a slow or dead collector never blocks a request (a full queue drops spans, as the
SDK does). The gateway takes the sampling decision itself (parent-based, `sample_rate`) and
only starts spans for sampled requests, so the SDK's sampler is ALWAYS_ON.

An `OtlpRecorder` is state kept across reloads, keyed by its export settings: a reload that
changes them builds a new one beside the running one; the old one is shut down (its queue
flushed, `shutdown()` in a worker thread) once the requests whose spans it holds are over, and
the gateway's shutdown flushes the last one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, Status, StatusCode, TraceFlags, TraceState

from ...compiler.schema import TracingConfig
from ..protocols.trace_context import Incoming

__all__ = ["OtlpRecorder", "OtlpSpan"]

_KINDS = {"server": SpanKind.SERVER, "client": SpanKind.CLIENT, "internal": SpanKind.INTERNAL}
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
RETIRE_WAIT = 60.0


class OtlpSpan:
    """An SDK span with its ids in hex (computed once: they go into headers and the log)."""

    __slots__ = ("_span", "span_id", "trace_id")

    def __init__(self, span: Any) -> None:
        self._span = span
        context = span.get_span_context()
        self.trace_id = f"{context.trace_id:032x}"
        self.span_id = f"{context.span_id:016x}"

    def set(self, key: str, value: Any) -> None:
        self._span.set_attribute(key, value)

    def rename(self, name: str) -> None:
        self._span.update_name(name)

    def end(self, error: str | None = None) -> None:
        if error is not None:
            self._span.set_attribute("error.type", error)
            self._span.set_status(Status(StatusCode.ERROR))
        self._span.end()


class OtlpRecorder:
    """A tracer provider exporting to one OTLP/HTTP endpoint, and the count of requests whose
    spans are still open (so retiring it waits for them)."""

    def __init__(self, config: TracingConfig) -> None:
        otlp = config.otlp
        assert otlp is not None
        resource = Resource.create({**config.resource_attributes, "service.name": config.service_name})
        self.provider = TracerProvider(resource=resource, sampler=ALWAYS_ON, shutdown_on_exit=False)
        exporter = OTLPSpanExporter(endpoint=otlp.endpoint, headers=dict(otlp.headers), timeout=otlp.timeout)
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self.provider.get_tracer("a3s_gateway")
        self.open = 0
        self._idle: anyio.Event | None = None

    def start_server(self, incoming: Incoming, name: str, attributes: dict[str, Any]) -> OtlpSpan:
        context = None
        if incoming.trace_id is not None and incoming.span_id is not None:
            parent = otel_trace.SpanContext(
                int(incoming.trace_id, 16),
                int(incoming.span_id, 16),
                is_remote=True,
                trace_flags=_SAMPLED,
                trace_state=TraceState.from_header([incoming.tracestate]) if incoming.tracestate else None,
            )
            context = otel_trace.set_span_in_context(otel_trace.NonRecordingSpan(parent))
        span = self._tracer.start_span(name, context, SpanKind.SERVER, attributes)
        return OtlpSpan(span)

    def start_child(self, parent: Any, name: str, kind: str, attributes: dict[str, Any]) -> OtlpSpan:
        context = otel_trace.set_span_in_context(parent._span)
        return OtlpSpan(self._tracer.start_span(name, context, _KINDS[kind], attributes))

    def hold(self) -> Callable[[], None]:
        self.open += 1
        return self._release

    def _release(self) -> None:
        self.open -= 1
        if not self.open and self._idle is not None:
            self._idle.set()

    async def aclose(self) -> None:
        """Shut down once no request holds a span open: the queue is flushed to the collector.

        The wait is bounded: a stream that never ends must not keep a retired exporter (and its
        thread) forever; its spans, ended later, are dropped."""
        with anyio.move_on_after(RETIRE_WAIT):
            while self.open:
                self._idle = anyio.Event()
                await self._idle.wait()
        await anyio.to_thread.run_sync(self.provider.shutdown)
