"""`kairos`: a service that asks a model which service should take each request.

```hcl
services "agent" {
  kairos {
    llm_service = "router-llm"          # an OpenAI-compatible chat completions service
    model       = "qwen2.5-0.5b-instruct"
    default     = "general"             # on a timeout, an error or an answer naming no candidate
    candidate "code" {
      service     = "coder"             # unset: the service named like the candidate
      description = "Programming: writing, fixing or explaining code"
    }
    candidate "general" { description = "Everything else: writing, questions, chat" }
    # deadline = "300ms"; max_text = 2000; cache_size = 1024; cache_ttl = "10m"
    # path = "/v1/chat/completions"; api_key = "${ROUTER_KEY}"; max_body = "8MiB"
  }
}
services "router-llm" { load_balancer { servers = [{ url = "http://127.0.0.1:8000" }] } }
services "coder"      { load_balancer { servers = [{ url = "http://gpu-1:8000" }] } }
services "general"    { load_balancer { servers = [{ url = "http://cpu-1:8000" }] } }
```

**The question.** The request's text (the last user message of OpenAI or Anthropic bodies, else
a completion's prompt or a channel event's `text`: stdlib/llm/prompt_text.py), cut to `max_text`
characters, goes to `llm_service` as an OpenAI chat completion (`model`, `temperature` 0, 16
tokens at most) whose system message lists the candidates, one `- name: description` line
each, and asks for exactly one name. The call goes through the gateway's own upstream pool of
that service (its balancer, health checks, timeouts, TLS), with the request's id; the service's
servers may be this gateway's own entrypoint, to reach a model through its routes (a
`model_router`, a local model).

**The answer** is read strictly: trimmed of whitespace, of one pair of quotes or backticks and of
a final period, it must be one candidate's name (any case). The request then goes, its body
unchanged, to that candidate's service.

**Fallback.** Past `deadline` (the whole answer; 300 ms by default), on a failure to reach the
model or an answer that is not a 2xx, and on an answer that names no candidate, the request
goes to `default`'s service at once. A request with no text goes there without asking.

**Cache.** Decisions are cached by a SHA-256 of the whole question (model, system message and
text), at most `cache_size` of them (least recently used out first) for `cache_ttl`; fallbacks
are not cached. The cache is kept across reloads that leave this service unchanged.

**The decision** is in the access log (`kairos_choice`, `kairos_service` and `kairos_reason`:
`model`, `cache`, `timeout`, `error`, `unparsable` or `no_text`), in the metric
`a3s_gateway_routing_decisions_total{service, target, reason}`, and in the
`a3s_gateway.kairos` logger (a fallback at INFO with its cause, a choice at DEBUG); never the
request's text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import anyio

from ...runtime.api import Handler, Headers, Request, Response
from ...runtime.errors import GatewayError, PayloadTooLarge
from ..base import BuildContext, ServiceKind
from ..common.llm_usage import api_format
from ..kairos import Candidate, DecisionCache, RouterPrompt
from ..llm.bodies import read_body, read_request_body, set_request_body
from ..llm.exchange import error_response
from ..llm.prompt_text import json_object, last_user_text
from ..registry import register
from .schemas.kairos import KairosConfig

__all__ = ["Kairos", "KairosConfig"]

_log = logging.getLogger("a3s_gateway.kairos")
_MAX_ANSWER = 64 * 1024  # a chat completion naming one service is far smaller


@register("service", "kairos")
class Kairos(ServiceKind[KairosConfig]):
    state: DecisionCache

    def __init__(
        self, config: KairosConfig, state: DecisionCache, ctx: BuildContext, services: Mapping[str, Handler]
    ) -> None:
        super().__init__(config, state, ctx, services)
        self.candidates = [
            Candidate(name, config.service_of(name), candidate.description)
            for name, candidate in config.candidates.items()
        ]
        self.prompt = RouterPrompt(self.candidates, config.model)
        self.default = next(c for c in self.candidates if c.name == config.default)
        auth = [(b"authorization", b"Bearer " + config.api_key.encode())] if config.api_key else []
        self._headers = [(b"content-type", b"application/json"), (b"accept", b"application/json"), *auth]

    @classmethod
    def new_state(cls, config: KairosConfig, ctx: BuildContext) -> DecisionCache:
        return DecisionCache(config.cache_size, config.cache_ttl)

    async def __call__(self, request: Request) -> Response:
        try:
            data = await read_request_body(request, self.config.max_body)
        except PayloadTooLarge as exc:
            return error_response(api_format(request.path), 413, exc.message)
        candidate, reason = await self._choose(request, data)
        self.ctx.recorder.routing_decision(self.ctx.name, candidate.service, reason)
        request.state.setdefault("log.fields", {}).update(
            {"kairos_choice": candidate.name, "kairos_service": candidate.service, "kairos_reason": reason}
        )
        set_request_body(request, data)
        service = self.services.get(candidate.service)
        if service is None:  # compile checks make this a bug
            return error_response(
                api_format(request.path), 503, f"service {candidate.service!r} is not available"
            )
        return await service(request)

    async def _choose(self, request: Request, data: bytes) -> tuple[Candidate, str]:
        body = json_object(data)
        text = (last_user_text(body) if body is not None else "")[: self.config.max_text]
        if not text.strip():
            return self.default, "no_text"
        key = self.prompt.key(text)
        now = self.ctx.clock.now()
        cached = self.state.get(key, now)
        if cached is not None:
            for candidate in self.candidates:
                if candidate.name == cached:
                    return candidate, "cache"
        answer, failure = await self._ask(request, text)
        chosen = self.prompt.read(answer) if answer is not None else None
        if chosen is None:
            reason = failure or "unparsable"
            _log.info(
                "kairos %s: %s; %s takes the request",
                self.ctx.name,
                failure or "unparsable answer",
                self.default.name,
            )
            return self.default, reason
        self.state.put(key, chosen.name, self.ctx.clock.now())
        _log.debug("kairos %s: the model chose %s", self.ctx.name, chosen.name)
        return chosen, "model"

    async def _ask(self, request: Request, text: str) -> tuple[bytes | None, str | None]:
        """The model's answer (a chat completion's bytes), or None and why not ("timeout", "error")."""
        service = self.services.get(self.config.llm_service)
        if service is None:
            return None, "error"
        data = self.prompt.body(text)
        question = Request(
            "POST",
            self.config.path,
            Headers([(b"host", request.host.encode() or b"localhost"), *self._headers]),
            client_addr=request.client_addr,
            client_ip=request.client_ip,
            request_id=request.request_id,
            route=request.route,
            clock=request.clock,
        )
        set_request_body(question, data)
        response: Response | None = None
        answer: bytes | None = None
        failure: str | None = "timeout"
        try:
            with anyio.move_on_after(self.config.deadline):
                response = await service(question)
                if 200 <= response.status < 300:
                    answer = await read_body(response.body, _MAX_ANSWER)
                    failure = None
                else:
                    failure = "error"
        except GatewayError as exc:  # unreachable, no backend, its own timeouts, an answer too large
            _log.debug("kairos %s: asking %s failed: %s", self.ctx.name, self.config.llm_service, exc.message)
            failure = "error"
        finally:
            if response is not None and answer is None:
                with anyio.CancelScope(shield=True):
                    await response.aclose()
        return answer, failure
