"""`model_router`: a service that routes LLM API requests by their `model`, with fallbacks.

```hcl
services "llm" {
  model_router {
    aliases       = { fast = "claude-haiku-4-5", smart = "gpt-4o" }
    default_model = "fast"             # a request naming no model (unset: 400)

    model "gpt-*" { service = "openai" }                 # globs: * ? [a-z], in order
    model "claude-haiku-4-5" {
      service        = "anthropic"
      api            = "anthropic"                       # an OpenAI client is converted to it
      api_key        = "${ANTHROPIC_API_KEY}"            # sent instead of the client's key
      upstream_model = "claude-haiku-4-5-20251001"       # the name sent upstream
      fallbacks      = ["gpt-4o-mini"]                   # tried in order
    }
    # max_body = "8MiB"; first_byte_timeout = "20s"; max_park = "5m"
  }
}
services "openai" {
  load_balancer { servers = [{ url = "https://api.openai.com" }]; pass_host_header = false }
}
services "anthropic" {
  load_balancer { servers = [{ url = "https://api.anthropic.com" }]; pass_host_header = false }
}
```

**The model.** The request body of OpenAI chat completions, completions and embeddings, and of
Anthropic messages, is read (up to `max_body`, else 413) and its top-level `model` taken. Aliases
are followed, then the exact model blocks are looked up, then the globs in order; the block
names the service and the model name to send upstream. The body goes up unchanged, byte for
byte, unless the name sent upstream differs: then only the `model` value is replaced (and
Content-Length follows). A body that is not a JSON object is a 400; one that names no model
takes `default_model`, or is a 400; a model no block matches is a 404 (`model_not_found`), each
in the client's own API format (Anthropic's for `/v1/messages`, OpenAI's otherwise).

**Fallbacks.** The model block's `fallbacks` (model names or aliases, resolved the same way) are
tried in order when an attempt fails before anything reached the client: a 429 or 5xx answer,
a connect failure, no backend, or a timeout before the first byte (the target service's
timeouts, or `first_byte_timeout`). While a fallback remains, the first body chunk is awaited
before the response is returned, so an upstream that answers 200 and then fails or stalls
before its first byte is also passed over. Once the response is returned, bytes may reach the
client, and nothing is retried: a stream cut after its first event reaches the client cut.
The last target's answer (or error, in the client's format) is the client's answer.

**Parking.** A 429 with `Retry-After` (seconds or an HTTP-date, capped at `max_park`) parks that
target (service and upstream model) until then: requests skip it and go to their fallbacks. When
every target of a request is parked, the client gets 429 with the `Retry-After` of the first to
come back. Parking is live state: a reload that leaves the service unchanged keeps it.

**Across providers.** A model block's `api` says which API its service speaks. When the client
speaks the other one (OpenAI chat completions against an Anthropic service, or Anthropic messages
against an OpenAI-compatible one), the attempt goes through the conversion of stdlib/llm: the
request is converted on the way up and the answer (whole, or event by event) on the way down, and
a fallback may so cross providers. `api_key` replaces the client's credentials for that service
(`x-api-key` for Anthropic, a Bearer token for OpenAI); without it the client's own go up,
except through a conversion, which never forwards them. Each attempt starts from the client's
request as it came.

**Tokens.** With no `llm-keys` in front (which meters the request itself), the router reads the
upstream's usage from the answer it returns, as llm-keys does (`meter_response`,
stdlib/common/llm_usage.py): `request.state["llm_usage"]` for the access log, and the token and
token-time series with `key="none"`. An OpenAI stream is asked for its usage chunk, which is
removed again when the client did not ask for it. The answer is read in the client's API:
conversions happen below this point.

Targets are services with backends (not other model routers).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import anyio

from ...runtime.api import (
    BodyStream,
    Handler,
    Headers,
    LlmExchange,
    Request,
    Response,
    empty_body,
)
from ...runtime.errors import ClientClosed, GatewayError, GatewayTimeout, PayloadTooLarge
from ..base import BuildContext, ServiceKind
from ..common.llm_usage import LlmRequest, api_format, meter_response, prepare_body, request_of
from ..common.model_labels import NO_KEY, ModelLabels
from ..llm.bodies import read_request_body, set_request_body
from ..llm.exchange import Conversion, Upstream
from ..llm.exchange import serve as serve_converted
from ..registry import register
from .model_request import (
    Api,
    NotAJsonObject,
    error_response,
    find_model,
    parse_object,
    with_model,
)
from .model_table import ModelTable, Target
from .parking import ParkingLot, retry_after
from .schemas.model_router import ModelRouterConfig

__all__ = ["ModelRouter", "ModelRouterConfig", "PrimedBody"]

_log = logging.getLogger("a3s_gateway.model_router")


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


@register("service", "model_router")
class ModelRouter(ServiceKind[ModelRouterConfig]):
    def __init__(
        self, config: ModelRouterConfig, state: ParkingLot, ctx: BuildContext, services: Mapping[str, Handler]
    ) -> None:
        super().__init__(config, state, ctx, services)
        self.parking = state
        self.clock = ctx.clock
        self.table = ModelTable(config.routes, config.aliases, config.default_model)
        # The metrics' bounded `model` label (stdlib/common/model_labels.py): the names and
        # globs of this table; llm-keys in front reads it from request.state.
        upstream = [r.upstream_model for r in config.routes.values() if r.upstream_model]
        self.model_labels = ModelLabels(
            [*config.routes, *config.aliases, *config.aliases.values(), *upstream]
        )
        self._conversions: dict[tuple[Api, Target], Conversion] = {}

    @classmethod
    def new_state(cls, config: ModelRouterConfig, ctx: BuildContext) -> ParkingLot:
        return ParkingLot()

    async def __call__(self, request: Request) -> Response:
        api = api_format(request.path)
        start = self.clock.now()
        try:
            data = await read_request_body(request, self.config.max_body)
        except PayloadTooLarge as exc:
            return error_response(api, 413, exc.message)
        body = _Body.parse(data, self.config.default_model)
        if isinstance(body, str):
            return error_response(api, 400, body, param="model")
        plan = self.table.plan(body.model)
        label = self.model_labels.label(body.model)
        # An llm-keys in front meters the request (it marks it with its key's name): else it is
        # metered here, in the same way, so that its tokens are counted once either way.
        llm = (
            None
            if "llm_key" in request.state
            else request_of(request.path, body.fields, data, bytes_per_token=None)
        )
        if not plan:
            message = f"The model `{body.model}` does not exist"
            response = error_response(api, 404, message, param="model", code="model_not_found")
        else:
            request.state["llm.model"] = body.model
            request.state["llm.model_label"] = label
            if llm is not None:
                body = body.asking_usage(llm)
            response = await self._try(request, api, body, plan)
        if llm is not None:
            exchange = LlmExchange(self.ctx.name, label, NO_KEY, response.status)
            if response.status >= 400:
                self.ctx.recorder.llm_exchange(exchange)
            else:
                # The response is in the client's API (a conversion is below this point).
                meter_response(
                    request, response, llm, self.clock.now, start, self.ctx.recorder.llm_exchange, exchange
                )
        return response

    async def _try(self, request: Request, api: Api, body: _Body, plan: tuple[Target, ...]) -> Response:
        now = self.clock.now()
        targets = [t for t in plan if not self.parking.parked(t, now)]
        if not targets:
            wait = math.ceil(self.parking.earliest(plan, now))
            message = f"every upstream for `{body.model}` is rate limited; retry in {wait}s"
            return error_response(api, 429, message, headers=[("retry-after", str(wait))])
        timeout = self.config.first_byte_timeout
        # An attempt may rewrite the request (a conversion, a key): each starts from the original.
        original = _Original(request)
        for index, target in enumerate(targets):
            last = index == len(targets) - 1
            service = self.services.get(target.service)
            if service is None:  # compile checks make this a bug; fail over like a dead service
                _log.error("model_router: service %r is not in this generation", target.service)
                continue
            if index:
                original.restore(request)
                self.ctx.recorder.llm_fallback(self.ctx.name, request.state["llm.model_label"])
            body.prepare(request, target.model)
            service = self._sender(api, target, service)
            request.state["llm.upstream_model"] = target.model
            request.state["llm.fallbacks"] = index
            try:
                if last and timeout is None:  # nothing to fall back to: no need to wait for a byte
                    response = await service(request)
                else:
                    response = await _first_byte(service, request, timeout)
            except ClientClosed:
                raise
            except GatewayError as exc:
                if last or not _retryable(exc.status):
                    return error_response(api, exc.status, exc.message, headers=exc.headers)
                _log.debug("model_router: %s failed (%s); next fallback", target, exc.message)
                continue
            if response.status == 429:
                self._park(target, response)
            if last or not _retryable(response.status):
                return response
            _log.debug("model_router: %s answered %s; next fallback", target, response.status)
            await response.aclose()
        return error_response(api, 503, f"no service can take `{body.model}`")

    def _sender(self, api: Api, target: Target, service: Handler) -> Handler:
        """How to send to `target`'s service: as it is, with the service's own key, or through
        a conversion when the service speaks the other API (stdlib/llm)."""
        route = target.route
        if route is None or (route.api in (None, api) and not route.api_key):
            return service
        upstream = Upstream(route.api or api, route.api_key)  # type: ignore[arg-type]
        if upstream.api == api:
            return functools.partial(_with_key, upstream, service)
        key = (api, target)
        conversion = self._conversions.get(key)
        if conversion is None:
            conversion = self._conversions[key] = Conversion(api, upstream)
        return functools.partial(_converted, conversion, service)

    def statistics(self) -> dict[str, int]:
        """For the admin API: how many targets (service and upstream model) are parked now."""
        return self.parking.statistics(self.clock.now())

    def _park(self, target: Target, response: Response) -> None:
        seconds = retry_after(response.headers.get("retry-after"), self.clock.wall())
        if seconds is not None:
            self.parking.park(target, min(seconds, self.config.max_park), self.clock.now())


def _converted(conversion: Conversion, service: Handler, request: Request) -> Awaitable[Response]:
    return serve_converted(conversion, request, service)


def _with_key(upstream: Upstream, service: Handler, request: Request) -> Awaitable[Response]:
    """`request` to `service` with the service's own key instead of the client's credentials."""
    raw = [(n, v) for n, v in request.headers.raw if n not in _CREDENTIALS]
    request.headers = Headers([*raw, *upstream.headers()])
    return service(request)


# The client's credentials, replaced by a service's `api_key`, and the OpenAI account fields that
# go with them (same API: `anthropic-version` and the like stay).
_CREDENTIALS = frozenset({b"authorization", b"x-api-key", b"openai-organization", b"openai-project"})


class _Original:
    """What an attempt may change in a request, to give the next attempt the client's request."""

    __slots__ = ("content_length", "headers", "method", "target")

    def __init__(self, request: Request) -> None:
        self.method, self.target = request.method, request.target
        self.headers, self.content_length = list(request.headers.raw), request.content_length

    def restore(self, request: Request) -> None:
        request.method, request.target = self.method, self.target
        request.headers, request.content_length = Headers(self.headers), self.content_length


async def _first_byte(service: Handler, request: Request, timeout: float | None) -> Response:
    """The response with its first body chunk already read (a failure or `timeout` before it
    is the attempt's failure), or a retryable response as it came."""
    response: Response | None = None
    try:
        if timeout is None:  # no cancel scope to enter and leave: the service's timeouts apply
            response = await service(request)
            if not _retryable(response.status):
                await PrimedBody.prime(response)
            return response
        with anyio.fail_after(timeout):
            response = await service(request)
            if not _retryable(response.status):
                await PrimedBody.prime(response)
            return response
    except TimeoutError:
        if response is not None:
            await response.aclose()
        raise GatewayTimeout(f"no response byte within {timeout:g}s") from None
    except GatewayError:
        if response is not None:
            await response.aclose()
        raise


class _Body:
    """The request body and its model, and the bytes to send for each upstream model name."""

    __slots__ = ("_bytes", "data", "fields", "model", "named", "text")

    def __init__(self, data: bytes, text: str, model: str, fields: dict[str, Any], *, named: bool) -> None:
        self.data = data
        self.text = text
        self.model = model
        self.fields = fields  # the parsed body (empty when there is none)
        # Whether the body names the model (False: the default's, to be added to it).
        self.named = named
        self._bytes: dict[str, bytes] = {}

    @classmethod
    def parse(cls, data: bytes, default_model: str | None) -> _Body | str:
        """The body, or why it cannot be routed (the message of a 400)."""
        model: Any = None
        text = ""
        members: dict[str, Any] = {}
        if data:
            try:
                members, text = parse_object(data)
            except NotAJsonObject as exc:
                return str(exc)
            model = members.get("model")
        if model is None:
            if default_model is None:
                return "you must provide a model parameter"
            return cls(data, text, default_model, members, named=False)
        if not isinstance(model, str):
            return "model must be a string"
        return cls(data, text, model, members, named=True)

    def asking_usage(self, llm: LlmRequest) -> _Body:
        """This body, or (an OpenAI stream whose client did not ask for its usage chunk) one
        that asks for it, as llm-keys does: `meter_response` removes the chunk again."""
        data = prepare_body(llm, self.data)
        if data is self.data:
            return self
        return _Body(data, data.decode(), self.model, self.fields, named=self.named)

    def bytes_for(self, upstream_model: str) -> bytes:
        """The body to send when asking for `upstream_model` (the body itself when unchanged)."""
        if not self.data or (self.named and upstream_model == self.model):
            return self.data
        cached = self._bytes.get(upstream_model)
        if cached is None:
            span = None
            if self.named:  # walk the text for the model's place: only now that it is renamed
                found = find_model(self.text)
                assert found is not None
                span = found[1], found[2]
            cached = self._bytes[upstream_model] = with_model(self.text, span, upstream_model)
        return cached

    def prepare(self, request: Request, upstream_model: str) -> None:
        """Give `request` a fresh body for `upstream_model` (each attempt reads its own)."""
        set_request_body(request, self.bytes_for(upstream_model))


class PrimedBody:
    """A response body whose first chunk was read ahead; the rest is read from the original.

    Costs nothing per chunk after the first: `__anext__` hands out the original's own awaitable,
    and end callbacks and `ready()` (the connection's write coalescing) pass through."""

    __slots__ = ("_body", "_first")

    def __init__(self, body: BodyStream, first: bytes | None) -> None:
        self._body = body
        self._first = first

    @classmethod
    async def prime(cls, response: Response) -> None:
        """Read the first chunk of `response`'s body now and keep it at the front."""
        try:
            first = await response.body.__anext__()
        except StopAsyncIteration:
            response.body = empty_body()
            return
        tracked = hasattr(response.body, "add_end_callback")
        response.body = (_TrackedPrimedBody if tracked else cls)(response.body, first)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    def __anext__(self) -> Awaitable[bytes]:
        first = self._first
        if first is None:
            return self._body.__anext__()
        self._first = None
        return _ready(first)

    def ready(self) -> tuple[list[bytes], bool]:
        inner: Callable[[], tuple[list[bytes], bool]] | None = getattr(self._body, "ready", None)
        chunks, ended = inner() if inner is not None else ([], False)
        if self._first is not None:
            chunks.insert(0, self._first)
            self._first = None
        return chunks, ended

    async def aclose(self) -> None:
        self._first = None
        await self._body.aclose()


class _TrackedPrimedBody(PrimedBody):
    """A primed body whose original takes end callbacks (body_end.py): so does this one."""

    __slots__ = ()

    def add_end_callback(self, callback: Callable[[BaseException | None], None]) -> None:
        add: Any = self._body.add_end_callback  # type: ignore[attr-defined]
        add(callback)


async def _ready(value: bytes) -> bytes:
    return value
