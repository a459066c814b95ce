# Privacy-aware routing: prompts with personal data, secrets or internal project names go to a
# local model; the rest to a hosted API. E-mail addresses and keys are redacted either way.
#
#   HOSTED_URL=https://api.openai.com LOCAL_URL=http://127.0.0.1:8000 \
#   a3s-gateway run --config examples/agent-privacy.hcl
#
#   curl localhost:8080/v1/chat/completions -d '{"model":"m","messages":[{"role":"user",
#        "content":"my card is 4111 1111 1111 1111"}]}'                     -> the local model
#
# Without the variables both services are the built-in demo model (which echoes the prompt, so
# the redaction shows in its answer). The decision is in the access log: privacy_level,
# privacy_rules (names only, never the matched text) and privacy_redacted. See docs/agents.md.

entrypoints "web" {
  address = "0.0.0.0:${A3S_PORT:-8080}"
}

access_log = true

routers "llm" {
  rule    = "PathPrefix(`/v1/`)"
  service = "llm"
}

services "llm" {
  privacy_router {
    # restricted and confidential go local; internal takes public's service.
    route = { public = "hosted", confidential = "local" }

    # Built-in detectors (email, phone, card, iban, national_id, api_key, private_key) are on,
    # with their default levels; here phone numbers count as internal only.
    detectors = { phone = "internal" }

    rule "projects" {
      level    = "confidential"
      keywords = ["Project Nightingale", "Blue Harbor"]
    }
    rule "employee-ids" {
      level    = "internal"
      patterns = ["\\bEMP-[0-9]{6}\\b"]
    }

    redact = ["email", "api_key", "private_key"]
  }
}

services "hosted" {
  load_balancer {
    servers          = [{ url = "${HOSTED_URL:-demo://hosted}" }]
    pass_host_header = false
  }
}

services "local" {
  load_balancer {
    servers = [{ url = "${LOCAL_URL:-demo://local}" }]
  }
}
