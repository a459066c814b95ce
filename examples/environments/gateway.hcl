# One configuration, several environments (docs/providers.md#environment):
#
#   a3s-gateway run --config examples/environments/gateway.hcl                    development
#   a3s-gateway run --config examples/environments/gateway.hcl --env production   gateway.production.hcl laid over it
#   GATEWAY_ENV=production a3s-gateway run --config examples/environments/gateway.hcl
#   GATEWAY_SERVICES__LLM__LOAD_BALANCER__STRATEGY=p2c a3s-gateway compile --check --explain-env examples/environments/gateway.hcl
entrypoints "web" {
  address = "127.0.0.1:8080"
}

services "llm" {
  load_balancer {
    servers { url = "demo://llm-a" }
    servers { url = "demo://llm-b" }
  }
}

routers "llm" {
  rule    = "PathPrefix(`/v1`)"
  service = "llm"
}

log_level = "debug"
