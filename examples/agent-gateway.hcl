# An AI agent's gateway: chat platforms' webhooks in, the agent's model calls out.
#
#   SLACK_SIGNING_SECRET=... TELEGRAM_SECRET_TOKEN=... AGENT_URL=http://127.0.0.1:9000 \
#   a3s-gateway run --config examples/agent-gateway.hcl
#
# In: Slack's Event Subscriptions point at https://<host>/webhooks/slack; Telegram's setWebhook
# at https://<host>/webhooks/telegram with secret_token = $TELEGRAM_SECRET_TOKEN. Each request is
# verified the platform's way (401 otherwise, and the agent never sees it), Slack's
# url_verification is answered here, a retried delivery is answered but not forwarded again,
# and the agent at $AGENT_URL gets each event as a JSON POST:
#   {"platform", "type", "channel_id", "user_id", "message_id", "text", "attachments",
#    "reply_to", "timestamp", "raw"}
# With a secret unset, its channel refuses every request.
#
# Out: the agent calls its models through the same gateway, at /v1/ (OpenAI or Anthropic
# bodies). Each call is
#   - classified (priority): `X-Priority: critical|high|normal|low|best_effort` (the agent
#     sets it, e.g. high for a user waiting in a chat, best_effort for a summary job), batch
#     jobs best effort;
#   - queued (queue): at most 8 at once, the rest waiting by class; when the line is full the
#     lowest class is shed first with 503 and Retry-After;
#   - classified for privacy (privacy_router): prompts with personal data, keys or the
#     internal project names below stay on the local model servers, the rest go to the hosted
#     API; keys and private keys are redacted either way;
#   - on the local servers, kept with its conversation (conversation-affinity): the agent sends
#     the chat's channel_id as `X-Conversation-Id`, so its prompt cache is reused.
# The privacy decision (level and rule names, never the text) is in the access log.
#
# Without HOSTED_URL and LOCAL_URL_1/2 the models are the built-in demo backend. See
# docs/agents.md.

entrypoints "web" {
  address = "0.0.0.0:${A3S_PORT:-8080}"
}

access_log = true

# ------------------------------------------------------------------------- webhooks in

routers "slack" {
  rule        = "Path(`/webhooks/slack`)"
  service     = "agent"
  middlewares = ["slack"]
}

routers "telegram" {
  rule        = "Path(`/webhooks/telegram`)"
  service     = "agent"
  middlewares = ["telegram"]
}

middlewares "slack" {
  type           = "channel-slack"
  signing_secret = "${SLACK_SIGNING_SECRET:-}"
}

middlewares "telegram" {
  type         = "channel-telegram"
  secret_token = "${TELEGRAM_SECRET_TOKEN:-}"
}

services "agent" {
  load_balancer {
    servers = [{ url = "${AGENT_URL:-http://127.0.0.1:9000}" }]
  }
}

# ------------------------------------------------------------------------- model calls out

routers "models" {
  rule        = "PathPrefix(`/v1/`)"
  service     = "models"
  middlewares = ["priority", "queue"]
}

middlewares "priority" {
  type    = "priority"
  default = "normal"
  rules = [
    { path = "/v1/batches*", priority = "best_effort" },
    { header = "X-Priority", values = ["critical", "high", "normal", "low", "best_effort", "best-effort"] },
  ]
}

middlewares "queue" {
  type           = "queue"
  max_concurrent = 8
  max_waiting    = 128
  timeout        = "60s"
  retry_after    = "2s"
}

services "models" {
  privacy_router {
    # restricted and confidential stay local; internal takes public's service.
    route = { public = "hosted", confidential = "local" }

    rule "projects" {
      level    = "confidential"
      keywords = ["Project Nightingale", "Blue Harbor"]
    }

    redact = ["api_key", "private_key"]
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
    strategy = "conversation-affinity"
    servers = [
      { url = "${LOCAL_URL_1:-demo://local-1}" },
      { url = "${LOCAL_URL_2:-demo://local-2}" },
    ]
    conversation-affinity {
      key = ["header:X-Conversation-Id", "body:metadata.conversation_id", "body:user"]
      ttl = "30m"
    }
  }
}
