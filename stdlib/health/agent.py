"""`agent_health`: the readiness of model servers, read from their own endpoints.

```hcl
load_balancer {
  servers = [{ url = "http://gpu-1:8000" }, { url = "http://gpu-2:8000" }]
  agent_health {
    server     = "vllm"     # vllm | llama.cpp | tgi | json
    model      = "meta-llama/Llama-3.1-8B-Instruct"   # optional: must be served
    busy_queue = 8          # optional: Busy when 8 requests wait in the server's queue
    interval   = "5s"
    timeout    = "2s"
  }
}
```

Each backend is in one of five states, from its last probe:

| state       | what the server said                                         | traffic                    | failure? |
|-------------|--------------------------------------------------------------|----------------------------|----------|
| Ready       | serving                                                      | yes                        | no       |
| Busy        | serving, but saturated                                       | only when no Ready is left | no       |
| Loading     | up, model not served yet                                     | none                       | no       |
| Error       | up, but broken (5xx, wrong model, an answer it cannot read)  | none past the threshold    | yes      |
| Unreachable | no answer (refused, reset, timeout)                          | none past the threshold    | yes      |

How each server is read (one GET per endpoint, each within `timeout`):

- `vllm`: `GET /health` (200 when the engine runs; vLLM answers nothing before its engine is
  up: Unreachable), then `GET /v1/models`: Ready when it lists a model (`model`, when set),
  Loading while it lists none or not that one (an adapter or model still being loaded).
- `llama.cpp`: `GET /health?fail_on_no_slot=1`: 200 `{"status":"ok"}` is Ready; 503 whose body
  says "Loading model" (`{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}`,
  or the older `{"status":"loading model"}`) is Loading; 503 "no slot available" (servers that
  honour `fail_on_no_slot`) is Busy; anything else is Error.
- `tgi`: `GET /health` (200, or 503 when TGI's own generation check failed: Error), then
  `GET /info`: Ready when it names the `model_id` (`model`, when set: another one is Error), Loading
  while it does not answer it yet.
- `json`: `GET path` answering `{"status": ...}`: ok/ready/healthy/up/serving are Ready,
  loading/starting/initializing/warming_up are Loading, busy/overloaded/saturated are Busy, any
  other status (or a body that is not such a document) is Error. A numeric `queue` field feeds
  `busy_queue`.

Busy is what the server says (llama.cpp's no-slot answer, a JSON `busy`) or, with `busy_queue`,
its waiting-queue gauge at or past the threshold: vLLM's `vllm:num_requests_waiting`, TGI's
`tgi_queue_size` and llama.cpp's `llamacpp:requests_deferred` from `GET /metrics` (Prometheus
text; llama.cpp needs `--metrics`), the JSON document's `queue`. The queue is the signal chosen
because it is the one that means "a new request waits here"; running-request counts and KV-cache
usage are high on a server that is merely well used.

The verdict follows the `http` check's table (stdlib/health/http.py) with Ready and Busy as good
probes and Error and Unreachable as bad ones, so `unhealthy_threshold` consecutive failures take a
backend out and `healthy_threshold` good probes bring it back. Loading is neither: it takes the
backend out of rotation at once and leaves the failure streak untouched, and since no request
reaches a loading backend, passive health and circuit breakers see nothing from it either. A
backend is presumed Ready until its first probe, as the `http` check presumes it healthy.

The states are in the admin API (`/api/health`, `/api/backends`: `agent_state`) and in the
metric `a3s_gateway_service_server_agent_state{service,url,state}` (1 for the current state),
and each change is an `agent_state` event of the live feed (`GET /api/gateway/live`: `service`,
`url`, `state`, `previous`, `revision`; docs/observability.md), published before the `health`
event of a flip it causes.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import anyio

from ...compiler.schema import AgentHealthConfig
from ...runtime.api import Backend
from ..registry import register
from ._scheduler import ProbeScheduler, probe_headers, probe_url

if TYPE_CHECKING:
    import httpx

__all__ = [
    "BUSY",
    "ERROR",
    "LOADING",
    "READY",
    "STATES",
    "UNREACHABLE",
    "AgentHealthChecker",
    "json_status",
    "llamacpp_health",
    "queue_length",
    "read_state",
    "tgi_info",
    "vllm_models",
]

LOADING, READY, BUSY, ERROR, UNREACHABLE = "loading", "ready", "busy", "error", "unreachable"
STATES = (LOADING, READY, BUSY, ERROR, UNREACHABLE)
# The probe result each state is to the verdict's table (None: neither good nor bad).
_GOOD: dict[str, bool | None] = {READY: True, BUSY: True, LOADING: None, ERROR: False, UNREACHABLE: False}

_JSON_STATUS = {
    **dict.fromkeys(("ok", "ready", "healthy", "up", "serving"), READY),
    **dict.fromkeys(("loading", "starting", "initializing", "warming_up", "warming"), LOADING),
    **dict.fromkeys(("busy", "overloaded", "saturated"), BUSY),
}
# Each server's waiting-queue gauge on its /metrics (Prometheus text).
_QUEUE_GAUGES = {
    "vllm": "vllm:num_requests_waiting",
    "tgi": "tgi_queue_size",
    "llama.cpp": "llamacpp:requests_deferred",
}


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


# --------------------------------------------------------------------------- pure readings


def llamacpp_health(status: int, body: bytes) -> str:
    """llama.cpp's `/health` answer as a state."""
    if status == 200:
        return READY
    text = body.decode("utf-8", "replace").lower()
    if status == 503 and "loading model" in text:
        return LOADING
    if status == 503 and "no slot available" in text:
        return BUSY
    return ERROR


def vllm_models(status: int, body: bytes, model: str | None) -> str:
    """vLLM's `/v1/models` answer (after a good `/health`) as a state."""
    doc = _json(body) if status == 200 else None
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        return ERROR
    ids = {entry.get("id") for entry in data if isinstance(entry, dict)}
    return READY if ids and (model is None or model in ids) else LOADING


def tgi_info(status: int, body: bytes, model: str | None) -> str:
    """TGI's `/info` answer (after a good `/health`) as a state."""
    doc = _json(body) if status == 200 else None
    served = doc.get("model_id") if isinstance(doc, dict) else None
    if not isinstance(served, str):
        return LOADING
    return READY if model is None or served == model else ERROR


def json_status(body: bytes) -> tuple[str, float | None]:
    """A generic `{"status": ..., "queue": n}` document: its state and its queue length, if any."""
    doc = _json(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("status"), str):
        return ERROR, None
    queue = doc.get("queue")
    length = float(queue) if isinstance(queue, (int, float)) and not isinstance(queue, bool) else None
    return _JSON_STATUS.get(doc["status"].strip().lower(), ERROR), length


def queue_length(metrics_text: str, gauge: str) -> float | None:
    """The sum of `gauge`'s samples in a Prometheus text exposition (None when absent or unreadable)."""
    from prometheus_client.parser import text_string_to_metric_families

    total, seen = 0.0, False
    try:
        for family in text_string_to_metric_families(metrics_text):
            for sample in family.samples:
                if sample.name == gauge and math.isfinite(sample.value):
                    total, seen = total + sample.value, True
    except ValueError:
        return None
    return total if seen else None


# --------------------------------------------------------------------------- one probe


class _Probe:
    """The GETs of one probe of one backend."""

    def __init__(self, client: httpx.AsyncClient, url: str, config: AgentHealthConfig) -> None:
        self.client, self.url, self.config = client, url, config

    async def get(self, path: str) -> tuple[int, bytes]:
        response = await self.client.get(
            probe_url(self.url, self.config, path), headers=probe_headers(self.config)
        )
        return response.status_code, response.content

    async def queue(self, state: str) -> str:
        """`state`, or Busy when the server's waiting queue has reached `busy_queue`."""
        limit, gauge = self.config.busy_queue, _QUEUE_GAUGES.get(self.config.server)
        if state != READY or limit is None or gauge is None:
            return state
        status, body = await self.get("/metrics")
        length = queue_length(body.decode("utf-8", "replace"), gauge) if status == 200 else None
        return BUSY if length is not None and length >= limit else READY


async def _health_then(probe: _Probe, path: str, reading: Callable[[int, bytes, str | None], str]) -> str:
    """vLLM and TGI: `GET /health` must answer 200; then `path`'s answer says which state."""
    status, _ = await probe.get("/health")
    if status != 200:
        return ERROR
    status, body = await probe.get(path)
    return await probe.queue(reading(status, body, probe.config.model))


async def _llamacpp(probe: _Probe) -> str:
    return await probe.queue(llamacpp_health(*await probe.get("/health?fail_on_no_slot=1")))


async def _generic(probe: _Probe) -> str:
    _, body = await probe.get(probe.config.path)
    state, length = json_status(body)
    limit = probe.config.busy_queue
    if state == READY and limit is not None and length is not None and length >= limit:
        return BUSY
    return state


_READERS: dict[str, Callable[[_Probe], Awaitable[str]]] = {
    "vllm": functools.partial(_health_then, path="/v1/models", reading=vllm_models),
    "llama.cpp": _llamacpp,
    "tgi": functools.partial(_health_then, path="/info", reading=tgi_info),
    "json": _generic,
}


async def read_state(client: httpx.AsyncClient, backend_url: str, config: AgentHealthConfig) -> str:
    """One probe of a model server: its state."""
    import httpx

    try:
        with anyio.fail_after(config.timeout):
            return await _READERS[config.server](_Probe(client, backend_url, config))
    except (httpx.TransportError, TimeoutError, OSError):
        return UNREACHABLE


# --------------------------------------------------------------------------- the checker


@register("health", "agent", config=AgentHealthConfig)
class AgentHealthChecker(ProbeScheduler[AgentHealthConfig]):
    """Probes model servers and keeps each one's state beside its verdict."""

    presumed_state: ClassVar[str | None] = READY

    def __init__(self, config: AgentHealthConfig, **options: Any) -> None:
        options.pop("prober", None)  # the service layer's TCP prober: model servers speak HTTP
        super().__init__(config, **options)
        self._states: dict[str, str] = {}

    def state(self, key: str) -> str:
        return self._states.get(key, READY)

    def healthy(self, key: str) -> bool:
        return self._states.get(key) != LOADING and super().healthy(key)

    def busy(self, key: str) -> bool:
        return self._states.get(key) == BUSY

    def forget(self, key: str) -> None:
        self._states.pop(key, None)

    async def _probe_once(self, backend: Backend) -> bool | None:
        state = await read_state(self.client, backend.url, self.config)
        if backend.key in self._targets:  # not removed while the probe ran
            self._states[backend.key] = state
        return _GOOD[state]

    def counts(self, keys: Iterable[str]) -> Mapping[str, int]:
        """How many of these backends are in each state."""
        out = dict.fromkeys(STATES, 0)
        for key in keys:
            out[self.state(key)] += 1
        return out

    def statistics(self) -> Mapping[str, int]:
        return {**super().statistics(), **self.counts(self._targets)}
