# a3s-gateway routing by model (benchmarks/run.sh step `routecost`): the same entrypoint, router
# and backend service as gateway.hcl, with a model_router service in front of the backend. The
# request's model is an alias, renamed upstream, with a fallback: the costliest ordinary path
# (the body is read and its model found, the plan looked up, the body rewritten, the response's
# first chunk awaited before it is returned). Placeholders as in gateway.hcl.

log_level = "warning"

entrypoints "web" {
  address = "{listen_host}:{listen_port}"
}

routers "all" {
  rule    = "PathPrefix(`/`)"
  service = "llm"
}

services "llm" {
  model_router {
    aliases       = { fast = "gpt-4o-mini" }
    default_model = "gpt-4o"   # the harness's readiness probe is a GET / without a body
    model "gpt-4o-mini" {
      service        = "backend"
      upstream_model = "gpt-4o-mini-2024-07-18"
      fallbacks      = ["gpt-4o"]
    }
    model "gpt-*" { service = "backend" }
  }
}

services "backend" {
  load_balancer {
    servers              = [{ url = "{backend_url}" }]
    max_idle_connections = 1024
  }
}
