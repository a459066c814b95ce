# agent_health: route by the model servers' own readiness (docs/agents.md#agent-health-probe).
# Two vLLM replicas: one that is still loading its model takes no traffic (and counts as no
# failure); one with 8 or more requests waiting in its queue is Busy and takes traffic only when
# no Ready replica is left. The states are in /api/gateway/health and the metric
# a3s_gateway_service_server_agent_state.

entrypoints "web" {
  address = ":${A3S_PORT:-8080}"
}

api {
  address = "127.0.0.1:9090"
}

metrics {
  prometheus {}
}

routers "chat" {
  rule    = "PathPrefix(`/v1`)"
  service = "vllm"
}

services "vllm" {
  load_balancer {
    strategy = "least-connections"
    servers  = [{ url = "http://127.0.0.1:8001" }, { url = "http://127.0.0.1:8002" }]
    agent_health {
      server     = "vllm"
      model      = "meta-llama/Llama-3.1-8B-Instruct"
      busy_queue = 8
      interval   = "5s"
      timeout    = "2s"
    }
  }
}
