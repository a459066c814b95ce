# Conversation affinity: every request of one conversation goes to the same model server, so the
# prompt (KV) cache it built there is reused; consistent hashing with bounded loads keeps the
# servers evenly loaded, and a server that fails moves only its own conversations.
#
#   a3s-gateway run --config examples/agent-affinity.hcl
#
#   curl localhost:8080/v1/chat/completions -H 'X-Conversation-Id: c-42' \
#     -d '{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
#
# A request names its conversation with the X-Conversation-Id header, or in its body as OpenAI's
# `metadata.conversation_id` or `user`, or by the `sub` of its bearer token (verified by the jwt
# middleware). The three demo replicas stand in for vLLM or llama.cpp servers.

entrypoints "web" {
  address = "0.0.0.0:${A3S_PORT:-8080}"
}

routers "agents" {
  rule    = "PathPrefix(`/v1/`)"
  service = "model-servers"
}

# With a token: its `sub` claim names the conversation (the key list below reads jwt:sub).
routers "signed-in" {
  rule        = "PathPrefix(`/v1/`) && HeaderRegexp(`Authorization`, `^Bearer .+`)"
  service     = "model-servers"
  middlewares = ["auth"]
}

middlewares "auth" {
  type  = "jwt"
  value = "${JWT_SECRET:-change-me-to-a-secret-of-32-bytes-or-more}"
}

services "model-servers" {
  load_balancer {
    strategy = "conversation-affinity"
    servers = [
      { url = "demo://gpu-1" },
      { url = "demo://gpu-2" },
      { url = "demo://gpu-3" },
    ]
    conversation-affinity {
      key         = ["header:X-Conversation-Id", "jwt:sub", "body:metadata.conversation_id", "body:user"]
      load_factor = 1.25    # no server holds more than ceil(1.25 x the average) requests in flight
      ttl         = "30m"   # a conversation idle this long is forgotten
      max_entries = 100000  # conversations remembered (least recent first out)
    }
    health_check {
      path     = "/health"
      interval = "5s"
    }
  }
}
