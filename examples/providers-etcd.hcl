# Routers, services and middlewares from etcd (docs/providers.md#etcd): the files hold the
# entrypoint and the model backend; etcd holds the routes, each named <name>@etcd, changed
# without touching the files. A put takes effect within the throttle.
#
#   etcd &                                     (Debian: apt install etcd-server)
#   etcdctl put a3s/http/routers/chat/rule 'PathPrefix(`/chat`)'
#   etcdctl put a3s/http/routers/chat/service llm          # unqualified: etcd's first, then the files'
#   etcdctl put a3s/http/routers/chat/middlewares/0 strip
#   etcdctl put a3s/http/middlewares/strip/type strip-prefix
#   etcdctl put a3s/http/middlewares/strip/prefixes/0 /chat
#   a3s-gateway run --config examples/providers-etcd.hcl
#   curl localhost:8080/chat/v1/models
#
# In CI, without etcd: `a3s-gateway providers dump --config examples/providers-etcd.hcl --out snap/`
# saves what etcd gives now, and `a3s-gateway compile --check --provider-snapshot snap/ ...` checks it.
entrypoints "web" {
  address = "127.0.0.1:8080"
}

services "llm" {
  load_balancer {
    servers { url = "demo://llm" }
  }
}

routers "models" {
  rule    = "Path(`/v1/models`)"
  service = "llm"
}

providers {
  throttle = "2s"
  etcd {
    endpoints = ["127.0.0.1:2379"]
    root_key  = "a3s"
  }
}

api {
  address = "127.0.0.1:9090"   # /api/gateway/health shows each provider's state and last error
}
