# Scale-to-zero for a local model server: no replica runs while idle. The first request starts
# one (the `process` executor runs the command with a free port), waits in the cold-start buffer
# while the model loads, and is forwarded the moment /health answers. Nothing is dropped: a
# request that waits longer than buffer_timeout gets 503 with Retry-After.
entrypoints "web" { address = "127.0.0.1:8080" }

routers "chat" {
  rule    = "PathPrefix(`/v1/`)"
  service = "llama"
}

services "llama" {
  scaling {
    min_replicas          = 0
    max_replicas          = 2
    container_concurrency = 4       # llama.cpp slots per replica
    target_utilization    = 0.7
    buffer_enabled        = true
    buffer_timeout        = "180s"  # a cold 8B model takes a while to load
    buffer_max_requests   = 200
    buffer_keepalive      = "15s"   # SSE comments while waiting, for clients with idle timeouts
    scale_to_zero_grace   = "5m"
    executor              = "process"

    process {
      # The built-in demo model stands in for `llama-server -m model.gguf --port {port}`.
      command       = "a3s-gateway demo-backend --port {port}"
      health_path   = "/health"
      ready_timeout = "300s"
      stop_grace    = "10s"
    }
  }

  load_balancer { strategy = "least-connections" }
  timeouts { response_header = "600s" }
}
