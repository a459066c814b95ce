# An AI agent's front door: chat platforms' webhooks in, one JSON event shape out.
#
#   SLACK_SIGNING_SECRET=... TELEGRAM_SECRET_TOKEN=... AGENT_URL=http://127.0.0.1:9000 \
#   a3s-gateway run --config examples/agent-gateway.hcl
#
# Slack's Event Subscriptions point at https://<host>/webhooks/slack; Telegram's setWebhook at
# https://<host>/webhooks/telegram with secret_token = $TELEGRAM_SECRET_TOKEN. Each request is
# verified the platform's way (401 otherwise, and the agent never sees it), Slack's
# url_verification is answered here, a retried delivery is answered but not forwarded again,
# and the agent gets each event as a JSON POST:
#   {"platform", "type", "channel_id", "user_id", "message_id", "text", "attachments",
#    "reply_to", "timestamp", "raw"}
# With a secret unset, its channel refuses every request.

entrypoints "web" {
  address = "0.0.0.0:${A3S_PORT:-8080}"
}

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
