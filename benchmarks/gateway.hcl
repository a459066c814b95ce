# a3s-gateway under benchmark: everything on {listen_host}:{listen_port} goes to {backend_url}.
# A template rendered by the harness (../shared/bench, its `config` mechanism): only the
# {placeholders} above are replaced, HCL's own braces are left alone.
#
# Deliberately minimal and realistic: one entrypoint, one router, one service, no middleware.
# The one non-default setting mirrors the nginx reference (`keepalive 1024` upstream): the
# keep-alive pool keeps up to 1024 idle connections instead of 64, so the 256-connection test
# reuses upstream connections instead of opening and closing them.

log_level = "warning"

entrypoints "web" {
  address = "{listen_host}:{listen_port}"
}

routers "all" {
  rule    = "PathPrefix(`/`)"
  service = "backend"
}

services "backend" {
  load_balancer {
    servers              = [{ url = "{backend_url}" }]
    max_idle_connections = 1024
  }
}
