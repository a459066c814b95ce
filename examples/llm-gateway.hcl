# Protocol conversion: OpenAI clients served by Anthropic, Anthropic clients served by OpenAI.
#
#   ANTHROPIC_BASE_URL=https://api.anthropic.com ANTHROPIC_API_KEY=sk-ant-... \
#   OPENAI_BASE_URL=https://api.openai.com OPENAI_API_KEY=sk-... \
#   a3s-gateway run --config examples/llm-gateway.hcl
#
#   OpenAI(base_url="http://localhost:8080/openai/v1", api_key="anything")         -> Claude
#   Anthropic(base_url="http://localhost:8080/anthropic", api_key="anything")      -> GPT
#
# Without the variables both routes go to the built-in demo model, which speaks both APIs, so
# the file runs as it is. The base URLs are origins: the gateway calls their /v1/messages and
# /v1/chat/completions. Clients may send any key; the upstream keys come from the environment.

entrypoints "web" {
  address = "0.0.0.0:${A3S_PORT:-8080}"
}

# OpenAI in (/openai/v1/chat/completions, /openai/v1/models), Anthropic upstream.
routers "openai" {
  rule        = "PathPrefix(`/openai/v1/`)"
  service     = "anthropic"
  middlewares = ["openai-to-anthropic"]
}

# Anthropic in (/anthropic/v1/messages, /anthropic/v1/messages/count_tokens, /anthropic/v1/models),
# OpenAI upstream.
routers "anthropic" {
  rule        = "PathPrefix(`/anthropic/v1/`)"
  service     = "openai"
  middlewares = ["anthropic-to-openai"]
}

middlewares "openai-to-anthropic" {
  type               = "llm-convert"
  client             = "openai"
  upstream           = "anthropic"
  api_key            = "${ANTHROPIC_API_KEY:-}"
  default_max_tokens = 4096
}

middlewares "anthropic-to-openai" {
  type     = "llm-convert"
  client   = "anthropic"
  upstream = "openai"
  api_key  = "${OPENAI_API_KEY:-}"
}

services "anthropic" {
  load_balancer {
    servers          = [{ url = "${ANTHROPIC_BASE_URL:-demo://llm}" }]
    pass_host_header = false
  }
}

services "openai" {
  load_balancer {
    servers          = [{ url = "${OPENAI_BASE_URL:-demo://llm}" }]
    pass_host_header = false
  }
}
