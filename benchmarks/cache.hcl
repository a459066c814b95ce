# a3s-gateway under benchmark with the `cache` middleware: the same route as gateway.hcl, with
# the backend's responses made cacheable (a `headers` middleware inside the cache sets
# Cache-Control), so every request after the first is a cache hit. `cpucost.py` compares it
# with gateway.hcl (every request proxied) and with gateway.hcl plus the same `headers`
# middleware alone (proxied, the same middleware work minus the cache): see docs/cache.md.
# Rendered like gateway.hcl: only {listen_host}, {listen_port} and {backend_url} are replaced.
# Set MIDDLEWARES to ["cacheable"] for the proxied-with-headers comparison target.

log_level = "warning"

entrypoints "web" {
  address = "{listen_host}:{listen_port}"
}

routers "all" {
  rule        = "PathPrefix(`/`)"
  service     = "backend"
  middlewares = ["cache", "cacheable"]
}

services "backend" {
  load_balancer {
    servers              = [{ url = "{backend_url}" }]
    max_idle_connections = 1024
  }
}

middlewares "cache" {
  type = "cache"
}

middlewares "cacheable" {
  type             = "headers"
  response_headers = { "Cache-Control" = "max-age=3600" }
}
