# Quick start: an OpenAI-compatible endpoint on :8080, served by the built-in demo model.
#
#   make run
#   curl -N localhost:8080/v1/chat/completions \
#        -d '{"model": "demo", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'
#
# Replace `demo://llm` with your model server (e.g. "http://127.0.0.1:8000") to proxy it instead.

entrypoints "web" {
  address = "127.0.0.1:8080"
}

routers "llm" {
  rule        = "PathPrefix(`/v1`)"
  service     = "llm"
  entrypoints = ["web"]
}

services "llm" {
  load_balancer {
    strategy = "round-robin"
    servers  = [{ url = "demo://llm" }]
  }
}
