# The A3S docs' full example, completed: an LLM API behind TLS with JWT auth, rate limiting and a
# circuit breaker; 5% of traffic mirrored to a canary; a gradual rollout from revision v1 (fixed
# servers) to v2 with automatic rollback, where v2, the new model, scales from zero through an
# orchestrator webhook as the rollout sends it traffic.
#
# Set JWT_SECRET, ORCHESTRATOR_URL and the certificate paths in the environment to run it.
entrypoints "web"       { address = "0.0.0.0:8080" }
entrypoints "websecure" {
  address = "0.0.0.0:8443"
  tls {
    cert_file = "${TLS_CERT_FILE:-/etc/certs/cert.pem}"
    key_file  = "${TLS_KEY_FILE:-/etc/certs/key.pem}"
  }
}

routers "llm-api" {
  rule        = "Host(`api.example.com`) && PathPrefix(`/v1`)"
  service     = "llm-service"
  entrypoints = ["websecure"]
  middlewares = ["auth-jwt", "rate-limit", "circuit-breaker"]
}

services "llm-service" {
  # Two revisions of the model; the rollout moves traffic from v1 to v2. v2 scales on its own
  # with the service's `scaling` block below (`scaling = {}`); v1 runs on fixed servers.
  revisions = [
    { name = "v1", traffic_percent = 100, servers = [{ url = "http://127.0.0.1:8001" }, { url = "http://127.0.0.1:8002" }] },
    { name = "v2", traffic_percent = 0, scaling = {} },
  ]

  load_balancer {
    strategy = "least-connections"
    health_check { path = "/health"; interval = "10s" }
  }

  # Mirror 5% of traffic to a new model for shadow testing
  mirror { service = "llm-canary"; percentage = 5 }

  # Scale to zero when idle: buffer requests during cold start (for the revisions that scale)
  scaling {
    min_replicas          = 0
    max_replicas          = 8
    container_concurrency = 10
    target_utilization    = 0.7
    buffer_enabled        = true
    executor              = "box"
    box {
      scale_url     = "${ORCHESTRATOR_URL:-http://127.0.0.1:7000}/scale/llm-service-v2"
      endpoints_url = "${ORCHESTRATOR_URL:-http://127.0.0.1:7000}/endpoints/llm-service-v2"
    }
  }

  # Shift traffic from v1 to v2 over 10 steps, 1 minute apart
  # Auto-rollback if error rate > 5% or p99 > 5s
  rollout {
    from                 = "v1"
    to                   = "v2"
    step_percent         = 10
    step_interval_secs   = 60
    error_rate_threshold = 0.05
    latency_threshold_ms = 5000
  }
}

middlewares "auth-jwt"       { type = "jwt"; value = "${JWT_SECRET:-change-me-in-production}" }
middlewares "rate-limit"     { type = "rate-limit"; rate = 100; burst = 20 }
middlewares "circuit-breaker" {
  type              = "circuit-breaker"
  failure_threshold = 5
  cooldown_secs     = 30
  success_threshold = 2
}

# More configuration from a directory (here the canary service, in safe-rollout.d/): every *.hcl
# file in it is merged with this one, and with `run --watch` a file added, changed or removed there
# reloads the gateway. A relative path is relative to this file.
providers {
  file { watch = true; directory = "${CONF_DIR:-safe-rollout.d}" }
}
