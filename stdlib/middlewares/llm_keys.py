"""`llm-keys`: virtual API keys for LLM traffic, with model allowlists, RPM/TPM limits and budgets.

```hcl
middlewares "llm-keys" {
  type        = "llm-keys"
  redis_url   = "redis://127.0.0.1:6379/0"   # shared by every replica; or store_file = "keys.json"
  hash_secret = "a-long-random-server-side-secret"
  user_header = "X-User"                     # or user_claim = "sub" (after a jwt middleware)

  keys "team-a" {
    key           = "sk-team-a-0123456789abcdef"   # usually "${TEAM_A_KEY}"
    models        = ["gpt-4o*", "claude-*"]
    rpm           = 60
    tpm           = 100000
    budget        = 50
    budget_unit   = "usd"
    budget_period = "720h"
    expires       = "2027-01-01T00:00:00Z"
  }
  limits = [{ per = "user", tpm = 20000 }, { per = "global", tpm = 2000000 }]
  prices "gpt-4o*" {
    input  = 2.5                             # USD per million tokens
    output = 10
  }
  prices "claude-*" {
    input  = 3
    output = 15
  }
}
```

Clients send a gateway-issued key in `x-api-key` or `Authorization: Bearer` (the Anthropic and
OpenAI SDKs' own headers; x-api-key first, so Authorization can carry a user's JWT); both headers are removed before the request goes on, so the
client's key never reaches an upstream. A key is known only by its digest (see
`stdlib/common/key_store.py` for the hash and where keys are kept); keys are written in the
config or created and revoked through the admin API (`/api/gateway/keys`).

Each request is refused, in the client's API format (OpenAI-style error JSON, or Anthropic's
for `/v1/messages`), with 401 when the key is missing, unknown, revoked or expired; 403 when the
body's `model` matches none of the key's `models` globs; 429 with `Retry-After` when a limit is
reached (a spent lifetime budget is a 429 `insufficient_quota` without `Retry-After`: waiting
does not help); 503 when Redis cannot be asked and `fail_open` is false.

Metering reserves before the upstream call and settles after it (`stdlib/common/token_ledger.py`):
the reservation is the prompt's estimated size (body bytes / `bytes_per_token`) plus `max_tokens`
(or `default_max_tokens`); the real usage, read from the response as it streams
(`stdlib/common/llm_usage.py`), replaces it when the response ends. An upstream error (status
>= 400) costs nothing; a response that reports no usage keeps its reservation. OpenAI streams
are asked for their usage chunk, which is removed again when the client did not ask for it.
The meters are the key's `rpm`, `tpm` and `budget`, and each `limits` entry: per user (the
`user_header` or the `user_claim` of a `jwt` middleware placed before this one; the key's name
when the request names no user), per model, or global. With `redis_url` they are exact across
every gateway process (one Lua script reserves in all of them at once, or in none).

While Redis is down, `fail_open = true` lets requests with a valid key through unmetered and
`false` (the default) answers 503; either way a warning is logged at most once per
`retry_interval` and `statistics()` counts it. Keys stored in Redis cannot be checked while it is
down: those requests get 503 (a key written in the config still works).

For later middlewares and logs the request carries `state["llm_key"]` (the key's name),
`state["llm_key_tier"]` (its `tier`, when it has one: what `priority` rules read),
`state["llm_request"]` (the parsed body) and, once the response has ended, `state["llm_usage"]`.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio

from ...runtime.api import Handler, LlmExchange, Request, Response, iter_body
from ...runtime.errors import GatewayError, PayloadTooLarge
from ..base import BuildContext, MiddlewareKind
from ..common.key_admin import KeysAdmin
from ..common.key_store import ConfigKeys, FileKeyStore, KeyRecord, KeyStore, RedisKeyStore, digest
from ..common.llm_usage import (
    ApiFormat,
    LlmRequest,
    Usage,
    api_format,
    meter_response,
    prepare_body,
    read_request,
)
from ..common.model_labels import NO_KEY, ModelLabels
from ..common.redis_scripts import REDIS_ERRORS, RedisHealth, RedisScripts
from ..common.token_ledger import Admission, Ledger, LocalLedger, Meter, RedisLedger
from ..llm.bodies import read_request_body
from ..llm.errors import anthropic_error, anthropic_type_for_status, openai_error, openai_type_for_status
from ..registry import register
from .schemas.llm_keys import LlmKeysConfig

__all__ = ["LlmKeys", "LlmKeysConfig", "LlmKeysState"]

MINUTE = 60.0
# Keys made through the admin API are labelled by name up to this many per middleware (the
# count kept across reloads); later ones are counted together under API_KEYS_LABEL, so creating
# keys cannot grow the metrics without bound. Keys written in the config are always their name.
MAX_API_KEY_LABELS = 64
API_KEYS_LABEL = "api-other"
T = TypeVar("T")


@dataclass(eq=False)
class LlmKeysState:
    """Kept across reloads while the node is unchanged: the stores, the ledger and the counters."""

    config_keys: ConfigKeys
    store: KeyStore | None
    ledger: Ledger
    redis: RedisScripts | None
    health: RedisHealth
    hash_secret: bytes | None
    stats: dict[str, int] = field(
        default_factory=lambda: {"admitted": 0, "refused": 0, "redis_errors": 0, "failed_open": 0}
    )
    api_key_labels: set[str] = field(default_factory=set)

    def key_label(self, record: KeyRecord) -> str:
        """`record`'s value of the metrics' `key` label (see MAX_API_KEY_LABELS)."""
        if record.source == "config" or record.name in self.api_key_labels:
            return record.name
        if len(self.api_key_labels) < MAX_API_KEY_LABELS:
            self.api_key_labels.add(record.name)
            return record.name
        return API_KEYS_LABEL

    def statistics(self) -> dict[str, int]:
        return dict(self.stats)


class _Refused(Exception):
    def __init__(self, status: int, message: str, code: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or []


class _RedisDown(Exception):
    pass


@register("middleware", "llm-keys")
class LlmKeys(MiddlewareKind[LlmKeysConfig]):
    state: LlmKeysState

    def __init__(self, config: LlmKeysConfig, state: LlmKeysState, ctx: BuildContext) -> None:
        super().__init__(config, state, ctx)
        # What the admin API's /api/gateway/keys manages (see runtime/admin/keys.py).
        self.keys_admin = KeysAdmin(
            state.config_keys, state.store, state.hash_secret, ctx.clock, self.spent, state.statistics
        )
        # The metrics' `model` label: the models and prices this config names (a model_router
        # behind it sets its own, from its model table, in request.state["llm.model_label"]).
        names = [m for key in config.keys.values() for m in key.models or ()]
        self.model_labels = ModelLabels([*names, *config.prices])

    @classmethod
    def new_state(cls, config: LlmKeysConfig, ctx: BuildContext) -> LlmKeysState:
        secret = config.hash_secret.encode() if config.hash_secret else None
        records = {}
        for name, key in config.keys.items():
            key_digest = key.key_hash or digest(key.key or "", secret)
            records[key_digest] = KeyRecord.from_spec(name, key_digest, key, "config", 0.0)
        redis = RedisScripts(config.redis_url, config.timeout) if config.redis_url else None
        store: KeyStore | None = None
        ledger: Ledger
        if redis is not None:
            store = RedisKeyStore(redis, config.key_prefix, config.refresh)
            ledger = RedisLedger(redis, config.key_prefix)
        else:
            if config.store_file is not None:
                store = FileKeyStore(config.store_file, config.refresh)
            ledger = LocalLedger(ctx.clock)
        return LlmKeysState(
            ConfigKeys(records), store, ledger, redis, RedisHealth(config.retry_interval), secret
        )

    @classmethod
    async def close_state(cls, state: LlmKeysState) -> None:
        if state.redis is not None:
            await state.redis.aclose()

    async def __call__(self, request: Request, next: Handler) -> Response:
        fmt = api_format(request.path)
        start = self.ctx.clock.now()
        record: KeyRecord | None = None
        llm: LlmRequest | None = None
        try:
            record = await self._authenticate(request)
            llm = await self._read(request)
            if llm.model is not None and not record.allows(llm.model):
                raise _Refused(
                    403, f"key {record.name!r} may not use model {llm.model!r}", "model_not_allowed"
                )
            meters = self._meters(request, record, llm)
            request_id = secrets.token_hex(8)
            admission = await self._reserve(request_id, meters)
        except _Refused as refused:
            self.state.stats["refused"] += 1
            self._record(request, record, llm, refused.status)
            return _error_response(fmt, refused)
        self.state.stats["admitted"] += 1
        request.state["llm_key"] = record.name
        if record.tier is not None:
            request.state["llm_key_tier"] = record.tier
        try:
            response = await next(request)
        except BaseException as exc:
            await self._settle(request_id, meters, admission, llm, Usage())
            # The status the client gets: a GatewayError's; 499 (nginx's "client closed") for
            # a request cancelled with its client; 500 for anything else.
            status = (
                exc.status if isinstance(exc, GatewayError) else 500 if isinstance(exc, Exception) else 499
            )
            self._record(request, record, llm, status)
            raise
        if response.status >= 400 or llm.body is None:
            await self._settle(request_id, meters, admission, llm, Usage())
            self._record(request, record, llm, response.status)
            return response
        return self._metered(request, response, request_id, meters, admission, llm, record, start)

    def _record(
        self, request: Request, record: KeyRecord | None, llm: LlmRequest | None, status: int
    ) -> None:
        """Report the request to the metrics (nothing when they are off), with bounded labels."""
        self.ctx.recorder.llm_exchange(self._exchange(request, record, llm, status))

    def _exchange(
        self, request: Request, record: KeyRecord | None, llm: LlmRequest | None, status: int
    ) -> LlmExchange:
        route = request.route
        model = request.state.get("llm.model_label")
        if model is None:
            model = self.model_labels.label(llm.model if llm is not None else None)
        return LlmExchange(
            service=route.service if route is not None else "",
            model=model,
            key=self.state.key_label(record) if record is not None else NO_KEY,
            status=status,
        )

    # ------------------------------------------------------------------------- admission

    async def _authenticate(self, request: Request) -> KeyRecord:
        secret = _take_key(request)
        if secret is None:
            raise _Refused(
                401, "missing API key: send it as Authorization: Bearer or x-api-key", "missing_api_key"
            )
        key_digest = digest(secret, self.state.hash_secret)
        record = self.state.config_keys.find(key_digest)
        if record is None and self.state.store is not None:
            try:
                record = await self._with_redis(self.state.store.find(key_digest, self.ctx.clock.now()))
            except _RedisDown:
                raise _Refused(
                    503, "the key store is unavailable, try again", "service_unavailable"
                ) from None
        if record is None:
            raise _Refused(401, "invalid API key", "invalid_api_key")
        if record.expires is not None and record.expires <= self.ctx.clock.wall():
            raise _Refused(401, f"API key {record.name!r} has expired", "expired_api_key")
        return record

    async def _read(self, request: Request) -> LlmRequest:
        """Read (at most `max_body` bytes of) the JSON body; put it back for the upstream."""
        try:
            raw = await read_request_body(request, self.config.max_body)
        except PayloadTooLarge:
            raise _Refused(
                413, f"request body over {self.config.max_body} bytes", "request_too_large"
            ) from None
        try:
            llm = read_request(
                request.path,
                raw,
                bytes_per_token=self.config.bytes_per_token,
                default_max_tokens=self.config.default_max_tokens,
            )
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Refused(400, f"the request body is not valid JSON: {exc}", "invalid_json") from None
        if request.has_body:
            body = prepare_body(llm, raw)
            request.body = iter_body(body)
            request.content_length = len(body)
            request.headers.remove("transfer-encoding")
            request.headers.set("content-length", str(len(body)))
        request.state["llm_request"] = llm.body
        return llm

    def _meters(self, request: Request, record: KeyRecord, llm: LlmRequest) -> list[Meter]:
        tokens = float(llm.estimate.total)
        meters: list[Meter] = []
        own = f"k:{record.name}:"
        if record.rpm is not None:
            meters.append(Meter(own + "rpm", "window", record.rpm, MINUTE, 1.0, "requests"))
        if record.tpm is not None:
            meters.append(Meter(own + "tpm", "window", record.tpm, MINUTE, tokens))
        if record.budget is not None:
            if record.budget_unit == "usd":
                cost = self._cost(llm.model, llm.estimate)
                meters.append(
                    Meter(own + "budget", "budget", record.budget, record.budget_period, cost, "usd")
                )
            else:
                meters.append(Meter(own + "budget", "budget", record.budget, record.budget_period, tokens))
        for limit in self.config.limits:
            scope = self._scope(limit.per, request, record, llm)
            if scope is None:
                continue
            if limit.rpm is not None:
                meters.append(Meter(scope + "rpm", "window", limit.rpm, MINUTE, 1.0, "requests"))
            if limit.tpm is not None:
                meters.append(Meter(scope + "tpm", "window", limit.tpm, MINUTE, tokens))
        return meters

    def _scope(self, per: str, request: Request, record: KeyRecord, llm: LlmRequest) -> str | None:
        if per == "global":
            return "g:"
        if per == "model":
            return f"m:{llm.model}:" if llm.model is not None else None
        return f"u:{self._user(request) or record.name}:"

    def _user(self, request: Request) -> str | None:
        if self.config.user_header is not None:
            return request.headers.get(self.config.user_header) or None
        if self.config.user_claim is not None:
            claims = request.state.get("jwt_claims")
            value = claims.get(self.config.user_claim) if isinstance(claims, dict) else None
            return str(value) if value is not None else None
        return None

    def _cost(self, model: str | None, usage: Usage) -> float:
        price = self.config.price(model)
        if price is None:
            raise _Refused(403, f"model {model!r} has no price: a budget in usd cannot meter it", "no_price")
        return (usage.input_tokens * price.input + usage.output_tokens * price.output) / 1_000_000

    async def _reserve(self, request_id: str, meters: list[Meter]) -> Admission | None:
        """The ledger's admission; None when Redis is down and `fail_open` lets the request through."""
        if not meters:
            return Admission(True)
        try:
            admission = await self._with_redis(self.state.ledger.reserve(request_id, meters))
        except _RedisDown:
            if self.config.fail_open:
                self.state.stats["failed_open"] += 1
                self.ctx.recorder.llm_store_error(self.ctx.name, True)
                return None
            raise _Refused(
                503, "rate limits cannot be checked now, try again", "service_unavailable"
            ) from None
        if admission.admitted:
            return admission
        meter = meters[admission.refused]
        if admission.retry_after is None:
            raise _Refused(429, "the key's budget is spent", "insufficient_quota")
        retry = str(max(1, math.ceil(admission.retry_after)))
        what = "budget" if meter.kind == "budget" else meter.key.rsplit(":", 1)[-1].upper()
        message = f"{what} limit reached ({meter.key.split(':', 1)[0]}), retry after {retry}s"
        raise _Refused(429, message, "rate_limit_exceeded", [("retry-after", retry)])

    async def _with_redis(self, call: Coroutine[Any, Any, T]) -> T:
        """Await `call` unless Redis is known to be down; _RedisDown when it is or when it fails."""
        if self.state.redis is None:
            return await call
        now = self.ctx.clock.now()
        if not self.state.health.usable(now):
            call.close()
            raise _RedisDown
        try:
            with anyio.fail_after(self.config.timeout * 2):
                return await call
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)
            raise _RedisDown from None

    def _redis_failed(self, exc: BaseException) -> None:
        # Counted in statistics() (shown by GET /api/gateway/keys) and in the metrics.
        self.state.stats["redis_errors"] += 1
        self.ctx.recorder.llm_store_error(self.ctx.name, False)
        if self.state.health.failed(self.ctx.clock.now()):
            action = (
                "letting requests through unmetered" if self.config.fail_open else "refusing requests (503)"
            )
            self.ctx.logger.warning("llm-keys %s: redis unavailable (%s); %s", self.ctx.name, exc, action)

    # ------------------------------------------------------------------------- settling

    def _metered(
        self,
        request: Request,
        response: Response,
        request_id: str,
        meters: list[Meter],
        admission: Admission | None,
        llm: LlmRequest,
        record: KeyRecord,
        start: float,
    ) -> Response:
        async def settle(usage: Usage | None) -> None:
            await self._settle(request_id, meters, admission, llm, usage)

        exchange = self._exchange(request, record, llm, response.status)
        clock = self.ctx.clock
        meter_response(
            request, response, llm, clock.now, start, self.ctx.recorder.llm_exchange, exchange, settle
        )
        return response

    async def _settle(
        self,
        request_id: str,
        meters: list[Meter],
        admission: Admission | None,
        llm: LlmRequest,
        usage: Usage | None,
    ) -> None:
        """Replace the reservation by `usage` (None: the upstream reported none, keep the estimate)."""
        if admission is None or not meters or usage is None:
            return
        deltas = [self._delta(m, llm, usage) for m in meters]
        if not any(deltas):
            return
        settle = self.state.ledger.settle(request_id, meters, admission.stamp, deltas)
        if self.state.redis is None:
            await settle  # in memory: no checkpoint, so even a cancelled request settles
            return
        # A cancelled request (a client gone mid-stream) still settles: shield the Redis call.
        with anyio.CancelScope(shield=True):
            try:
                await self._with_redis(settle)
            except _RedisDown:
                pass  # the reservation stands: the request counts at its estimate

    def _delta(self, meter: Meter, llm: LlmRequest, usage: Usage) -> float:
        if meter.unit == "requests":
            return 0.0
        if meter.unit == "usd":
            return self._cost(llm.model, usage) - meter.amount
        return float(usage.total) - meter.amount

    # ------------------------------------------------------------------------- admin

    async def spent(self, record: KeyRecord) -> float | None:
        if record.budget is None:
            return None
        return await self.state.ledger.spent(f"k:{record.name}:budget", record.budget_period)


def _error_response(fmt: ApiFormat, refused: _Refused) -> Response:
    """A refusal in the client's own API format, so its SDK raises the error it knows."""
    if fmt == "anthropic":
        payload = anthropic_error(refused.message, anthropic_type_for_status(refused.status))
    else:
        kind = "insufficient_quota" if refused.code == "insufficient_quota" else None
        payload = openai_error(
            refused.message, kind or openai_type_for_status(refused.status), code=refused.code
        )
    return Response.json(refused.status, payload, refused.headers)


def _take_key(request: Request) -> str | None:
    """The key from `x-api-key`, else `Authorization: Bearer`; both headers are removed.

    `x-api-key` first: a request may carry a user's JWT in Authorization (for a `jwt` middleware
    and `user_claim`) and its gateway key in x-api-key.
    """
    auth = request.headers.get("authorization")
    api_key = request.headers.get("x-api-key")
    request.headers.remove("authorization")
    request.headers.remove("x-api-key")
    if api_key is not None and api_key.strip():
        return api_key.strip()
    if auth is not None:
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None
