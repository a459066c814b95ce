r"""`privacy_router`: a service that classifies each request's prompt by sensitivity and sends it
to the service chosen for that level, for example restricted prompts to a local model.

```hcl
services "chat" {
  privacy_router {
    route = { public = "hosted", confidential = "local", restricted = "local" }
    # detectors = { email = "internal", phone = "off" }   # over the defaults below
    rule "project-names" {
      level    = "confidential"
      keywords = ["Project Nightingale", "Blue Harbor"]
    }
    rule "employee-id" {
      level    = "internal"
      patterns = ["\\bEMP-[0-9]{6}\\b"]                     # RE2 (Go) syntax
    }
    redact = ["email", "api_key"]     # replaced by "[REDACTED:email]" before forwarding
    # mask = "[REDACTED:{rule}]"; max_body = "8MiB"
  }
}
services "hosted" { load_balancer { servers = [{ url = "https://api.openai.com" }] } }
services "local"  { load_balancer { servers = [{ url = "http://127.0.0.1:8000" }] } }
```

**Levels**: public, internal, confidential, restricted. A request gets the highest level of the
rules that match its prompt text, or public when none does, and goes to `route`'s service for
that level (a level not named takes the service of the level below it; `public` is required).

**What is read.** The body (up to `max_body`, else 413) of OpenAI chat completions, completions,
embeddings and Responses (`messages[].content` as a string or text parts, `prompt`, `input`,
`instructions`), Anthropic messages (`system`, `messages[].content` and its text blocks, tool
results' text) and the channel-normalised event (`text`). A body that is not a JSON object is
scanned whole, as bytes: an unparsed body is never waved through as public.

**Rules.** `rule "<name>"` blocks, tried first, in order: `keywords` (whole words, case-insensitive
unless `case_sensitive`) and `patterns` (RE2 syntax, the router rules' dialect; a bad one, or one
that matches the empty string, is a compile error at its position). Then the built-in detectors,
each with its default level: `email`, `phone` (confidential), `card` (Luhn-checked), `iban`
(mod-97-checked), `national_id` (US SSN, UK National Insurance number, Chinese resident ID with
its check digit), `api_key` (`sk-...`, `AKIA...`, `ghp_...`, `xox.-...`, `AIza...`) and
`private_key` (PEM) (restricted). Every rule is compiled once into one RE2 alternation, which
scans the prompt in one pass in linear time (stdlib/privacy/scanner.py); a 4 KiB prompt costs
tens of microseconds (docs/benchmarks.md).

**Redaction.** The matches of the rules and detectors named in `redact` (`"*"`: all) are replaced
by `mask` in the prompt text before the body is forwarded (re-encoded as compact JSON, with its
new Content-Length); a body with nothing to redact goes up byte for byte.

**The decision** is in the access log (`privacy_level`, `privacy_rules`, `privacy_redacted`), in
the metric `a3s_gateway_routing_decisions_total{service, target, reason}` (the reason is the
level), and in the `a3s_gateway.privacy` logger at DEBUG: the level, the service and the names of the rules
that matched, never the matched text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from ...runtime.api import Handler, Request, Response
from ...runtime.errors import PayloadTooLarge
from ..base import BuildContext, ServiceKind
from ..common.llm_usage import api_format
from ..llm.bodies import read_request_body, set_request_body
from ..llm.exchange import error_response
from ..privacy import Classifier, Decision, Scanner
from ..registry import register
from .schemas.privacy_router import PrivacyRouterConfig

__all__ = ["PrivacyRouter", "PrivacyRouterConfig"]

_log = logging.getLogger("a3s_gateway.privacy")


@register("service", "privacy_router")
class PrivacyRouter(ServiceKind[PrivacyRouterConfig]):
    def __init__(
        self, config: PrivacyRouterConfig, state: None, ctx: BuildContext, services: Mapping[str, Handler]
    ) -> None:
        super().__init__(config, state, ctx, services)
        # Compiled once per build: the patterns were checked at compile time.
        self.classifier = Classifier(Scanner(config.scan_rules()), frozenset(config.redact), config.mask)
        self.level_services = config.level_services()

    async def __call__(self, request: Request) -> Response:
        try:
            data = await read_request_body(request, self.config.max_body)
        except PayloadTooLarge as exc:
            return error_response(api_format(request.path), 413, exc.message)
        decision, data = self.classifier.classify(data)
        service_name = self.level_services[decision.level]
        self._record(request, decision, service_name)
        set_request_body(request, data)
        service = self.services.get(service_name)
        if service is None:  # compile checks make this a bug
            return error_response(api_format(request.path), 503, f"service {service_name!r} is not available")
        return await service(request)

    def _record(self, request: Request, decision: Decision, service: str) -> None:
        self.ctx.recorder.routing_decision(self.ctx.name, service, decision.level_name)
        request.state["privacy"] = decision
        request.state.setdefault("log.fields", {}).update(
            {
                "privacy_level": decision.level_name,
                "privacy_rules": list(decision.rules),
                "privacy_redacted": decision.redacted,
            }
        )
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug(
                "privacy_router %s: %s -> %s (rules: %s; %d redacted)",
                self.ctx.name,
                decision.level_name,
                service,
                ", ".join(decision.rules) or "none",
                decision.redacted,
            )
