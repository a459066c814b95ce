"""`llm-convert`: serve OpenAI Chat Completions clients from an Anthropic upstream, or Anthropic
Messages clients from an OpenAI-compatible one (OpenAI, vLLM, llama.cpp, TGI).

```hcl
routers "openai" {
  rule        = "PathPrefix(`/openai/`)"
  service     = "anthropic"
  middlewares = ["openai-to-anthropic"]
}
middlewares "openai-to-anthropic" {
  type               = "llm-convert"
  client             = "openai"
  upstream           = "anthropic"
  api_key            = "${ANTHROPIC_API_KEY:-}"
  default_max_tokens = 4096          # Anthropic requires max_tokens; used when the client sends none
}
services "anthropic" {
  load_balancer {
    servers          = [{ url = "https://api.anthropic.com" }]
    pass_host_header = false
  }
}
```

The route's path decides the endpoint by its end: `.../chat/completions` (OpenAI clients),
`.../messages` and `.../messages/count_tokens` (Anthropic clients), `.../models` and
`.../models/<id>` (both); any other path is a 404 in the client's format. The request goes to
the upstream's own endpoint under `upstream_prefix` (`/v1/messages`, `/v1/chat/completions`,
`/v1/models`), with its body converted and its credentials replaced by `api_key`: the client's
key (`Authorization`, `x-api-key`) never reaches the upstream, and any key is accepted from the
client (put an auth middleware before this one to check keys).

Responses come back converted: a JSON body whole, a stream event by event as each upstream
event arrives (nothing waits for the next event), errors in the client's format with a fitting
status (Anthropic's 529 `overloaded_error` is OpenAI's 503). A stream the upstream breaks off
ends with an error event in the client's format. Parameters the upstream cannot express
(`n > 1`, `logprobs`, `top_k` ...) are a 400 naming the parameter. `count_tokens` against an
OpenAI-compatible upstream, which has no such endpoint, is answered by its tokenizer when
`tokenize_path` names one (vLLM's `/tokenize`), else estimated; `x-a3s-token-count` says which.
The mapping itself is the pure library in `stdlib/llm/` (see docs/llm.md).
"""

from __future__ import annotations

from ...runtime.api import Handler, Request, Response
from ..base import BuildContext, MiddlewareKind
from ..llm.exchange import Conversion, Upstream, serve
from ..registry import register
from .schemas.llm_convert import LlmConvertConfig

__all__ = ["LlmConvert", "LlmConvertConfig"]


@register("middleware", "llm-convert")
class LlmConvert(MiddlewareKind[LlmConvertConfig]):
    def __init__(self, config: LlmConvertConfig, state: object, ctx: BuildContext) -> None:
        super().__init__(config, state, ctx)
        upstream = Upstream(
            config.upstream,
            config.api_key,
            config.anthropic_version,
            config.upstream_prefix,
            config.tokenize_path,
        )
        self.conversion = Conversion(config.client, upstream, config.default_max_tokens, config.max_body)

    async def __call__(self, request: Request, next: Handler) -> Response:
        return await serve(self.conversion, request, next)
