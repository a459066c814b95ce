# Services that describe themselves (docs/providers.md, "discovery"): each seed serves
# /.well-known/a3s-service.json (its name, routes and health path); healthy seeds become servers of
# the service they name, their routes become routers. A seed failing two checks in a row is removed.
#
#   a3s-gateway run --config examples/providers-discovery.hcl

entrypoints "web" {
  address = "127.0.0.1:8080"
}

middlewares "rate-limit" {   # a route's "middlewares": ["rate-limit"] names this one
  type = "rate-limit"
  rate = 50
}

providers {
  discovery {
    seeds               = ["http://10.0.0.5:8000", "http://10.0.0.6:8000"]
    interval            = "30s"
    unhealthy_threshold = 2
  }
}
