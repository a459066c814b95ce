# websocket_mux: one client WebSocket carrying named channels, each bound to its own service
# (docs/agents.md#websocket-multiplexing). Channels chat-* relay to a WebSocket chat agent, the
# "tools" channel POSTs each message to an HTTP tool server and only a JWT with scope "tools"
# may open it. A slow or failed channel closes alone: the socket and the other channels go on.

entrypoints "web" {
  address = ":${A3S_PORT:-8080}"
}

middlewares "auth" {
  type  = "jwt"
  value = "${JWT_SECRET:-change-me-to-a-long-random-secret}"
}

routers "agents" {
  rule        = "Path(`/agents`)"
  service     = "agents"
  middlewares = ["auth"]
}

services "chat" {
  load_balancer {
    servers = [{ url = "http://127.0.0.1:9001" }, { url = "http://127.0.0.1:9002" }]
  }
}

services "tools-api" {
  load_balancer {
    servers = [{ url = "http://127.0.0.1:9100" }]
  }
}

services "agents" {
  websocket_mux {
    buffer       = 64
    max_channels = 256
    max_message  = "1MiB"

    channel "chat-*" {
      service = "chat"
      path    = "/ws"
    }

    channel "tools" {
      service        = "tools-api"
      mode           = "http"
      path           = "/v1/call"
      require_claims = { scope = "tools" }
    }
  }
}
