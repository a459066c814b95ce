# Request priority: classify each request (a header, the user's JWT tier, the virtual key's
# tier, the path) as critical, high, normal, low or best_effort, then let a `queue` bound the
# model server's concurrency. Under overload the waiting line admits critical requests first
# and sheds best_effort ones first (503 + Retry-After). The same class orders the cold-start
# buffer of a scaled service (see docs/agents.md, "Request priority").
entrypoints "web" { address = "127.0.0.1:${A3S_PORT:-8080}" }

routers "chat" {
  rule        = "PathPrefix(`/v1/`)"
  service     = "llm"
  middlewares = ["auth", "priority", "queue"]
}

middlewares "auth" {
  type          = "jwt"
  value = "${JWT_SECRET:-a-demo-secret-of-at-least-32-bytes!!}"
}

middlewares "priority" {
  type    = "priority"
  default = "normal"
  rules = [
    { claim = "tier", values = ["enterprise"], priority = "critical" },
    { claim = "tier", values = ["free"], priority = "low" },
    { path = "/v1/batches*", priority = "best_effort" },
    { header = "X-Priority", values = ["low", "best_effort", "best-effort"] },  # a client may only lower itself
  ]
}

middlewares "queue" {
  type           = "queue"
  max_concurrent = 4      # the model server's parallel slots
  max_waiting    = 64
  timeout        = "60s"
  retry_after    = "2s"
}

services "llm" {
  load_balancer {
    servers = [{ url = "demo://llm" }]
  }
}
