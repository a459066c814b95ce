# Shadow-test a new model: every request is served by `llm-stable`; 20% are also copied to
# `llm-candidate`, whose answers are read and discarded. A slow or failing candidate never
# affects the client.
entrypoints "web" { address = "127.0.0.1:8080" }

routers "chat" {
  rule    = "PathPrefix(`/v1/`)"
  service = "llm-stable"
}

services "llm-stable" {
  load_balancer {
    strategy = "least-connections"
    servers  = [{ url = "http://127.0.0.1:8001" }, { url = "http://127.0.0.1:8002" }]
    health_check { path = "/health"; interval = "5s" }
  }
  mirror { service = "llm-candidate"; percentage = 20 }
}

services "llm-candidate" {
  load_balancer {
    servers = [{ url = "http://127.0.0.1:8101" }]
  }
  timeouts { response_header = "120s" }
}
