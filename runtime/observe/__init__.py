"""What the gateway tells operators about the traffic it serves.

access_log.py     one line per request, written off the event loop
metric_names.py   every Prometheus series: name, kind, labels, help (the docs' list)
metrics.py        the gateway's registry, kept across reloads; multiprocess mode for --workers
meters.py         the per-request side: cached label children, one end-of-body callback
tally.py          a kind of request's children, its durations batched and bucketed in C
state_series.py   series read from the live graph at scrape time (health, certificates ...)
tls_certs.py      the configured certificates' names and expiry
hub.py            the live feed: state changes and samples, a bounded queue per watcher
relay.py          --workers: each worker's state changes to the others' live feeds (Unix datagrams)
live_sample.py    a sample: rates and latencies as deltas of the registry's counters
tracing.py        trace context propagation and spans (otel.py: their OTLP export, the `otel` extra)
"""

from __future__ import annotations

from .access_log import AccessLog, AccessLogWriter, prepare_access_log
from .hub import FeedEnded, FeedEvent, LiveFeed, LiveHub
from .live_sample import Reading, Sampler, Totals
from .metrics import GatewayMetrics, prepare_metrics
from .tracing import Tracing, prepare_tracing

__all__ = [
    "AccessLog",
    "AccessLogWriter",
    "FeedEnded",
    "FeedEvent",
    "GatewayMetrics",
    "LiveFeed",
    "LiveHub",
    "Reading",
    "Sampler",
    "Totals",
    "Tracing",
    "prepare_access_log",
    "prepare_metrics",
    "prepare_tracing",
]
