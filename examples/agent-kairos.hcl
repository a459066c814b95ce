# AI routing policy (Kairos): a small model reads each request and picks the service for it.
#
#   ROUTER_URL=http://127.0.0.1:8000 ROUTER_MODEL=qwen2.5-0.5b-instruct \
#   CODER_URL=http://gpu-1:8000 CHAT_URL=https://api.openai.com \
#   a3s-gateway run --config examples/agent-kairos.hcl
#
# The router model is asked with an OpenAI chat completion listing the candidates; it must answer
# with one candidate's name. On a timeout (300 ms), an error or any other answer, `default` takes
# the request. Decisions are cached by a hash of the question. Without the variables, the router
# is the built-in demo backend answering as a router model (it picks the candidate whose
# description shares most words with the request) and both candidates are demo models.
# The decision is in the access log: kairos_choice, kairos_service, kairos_reason.

entrypoints "web" {
  address = "0.0.0.0:${A3S_PORT:-8080}"
}

access_log = true

routers "agent" {
  rule    = "PathPrefix(`/v1/`)"
  service = "agent"
}

services "agent" {
  kairos {
    llm_service = "router-llm"
    model       = "${ROUTER_MODEL:-a3s-router}"
    default     = "general"
    deadline    = "300ms"

    candidate "code" {
      service     = "coder"
      description = "Programming: writing, fixing, reviewing or explaining code"
    }
    candidate "general" {
      service     = "chat"
      description = "Everything else: writing, questions, summaries, conversation"
    }
  }
}

services "router-llm" {
  load_balancer { servers = [{ url = "${ROUTER_URL:-demo://router?router=1}" }] }
}

services "coder" {
  load_balancer { servers = [{ url = "${CODER_URL:-demo://coder}" }] }
}

services "chat" {
  load_balancer {
    servers          = [{ url = "${CHAT_URL:-demo://chat}" }]
    pass_host_header = false
  }
}
