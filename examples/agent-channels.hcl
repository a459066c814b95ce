# Every chat platform into one agent: each channel verifies its platform's signature, answers
# its handshake, drops retried deliveries and POSTs one JSON event shape to the agent at
# /events (see docs/agents.md, "Channel webhooks").
#
#   AGENT_URL=http://127.0.0.1:9000 SLACK_SIGNING_SECRET=... a3s-gateway run --config examples/agent-channels.hcl
#
# A platform whose secrets are not in the environment refuses every request (401).

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

routers "discord" {
  rule        = "Path(`/webhooks/discord`)"
  service     = "agent"
  middlewares = ["discord"]
}

routers "feishu" {
  rule        = "Path(`/webhooks/feishu`)"
  service     = "agent"
  middlewares = ["feishu"]
}

routers "dingtalk" {
  rule        = "Path(`/webhooks/dingtalk`)"
  service     = "agent"
  middlewares = ["dingtalk"]
}

routers "wecom" {
  rule        = "Path(`/webhooks/wecom`)"
  service     = "agent"
  middlewares = ["wecom"]
}

routers "webchat" {
  rule        = "Path(`/chat/messages`)"
  service     = "agent"
  middlewares = ["webchat"]
}

middlewares "slack" {
  type           = "channel-slack"
  signing_secret = "${SLACK_SIGNING_SECRET:-}"
  forward_path   = "/events"
}

middlewares "telegram" {
  type         = "channel-telegram"
  secret_token = "${TELEGRAM_SECRET_TOKEN:-}"
  forward_path = "/events"
}

middlewares "discord" {
  type         = "channel-discord"
  public_key   = "${DISCORD_PUBLIC_KEY:-}"
  forward_path = "/events"
}

middlewares "feishu" {
  type               = "channel-feishu"
  verification_token = "${FEISHU_VERIFICATION_TOKEN:-}"
  encrypt_key        = "${FEISHU_ENCRYPT_KEY:-}"
  forward_path       = "/events"
}

middlewares "dingtalk" {
  type         = "channel-dingtalk"
  app_secret   = "${DINGTALK_APP_SECRET:-}"
  forward_path = "/events"
}

middlewares "wecom" {
  type             = "channel-wecom"
  token            = "${WECOM_TOKEN:-}"
  encoding_aes_key = "${WECOM_ENCODING_AES_KEY:-}"
  forward_path     = "/events"
}

middlewares "webchat" {
  type           = "channel-webchat"
  jwt_secret     = "${WEBCHAT_JWT_SECRET:-}"
  max_body_bytes = "64KiB"
  dedup_window   = "2m"
  forward_path   = "/events"
}

services "agent" {
  load_balancer {
    servers = [{ url = "${AGENT_URL:-http://127.0.0.1:9000}" }]
  }
}
