# Backends from DNS (docs/providers.md, "dns"): every address of llm.internal, and the
# targets of an SRV record, re-resolved as their TTLs run out. A server gone from the answer is
# drained, not cut.
#
#   a3s-gateway run --config examples/providers-dns.hcl
#   a3s-gateway compile --check examples/providers-dns.hcl \
#       --provider-snapshot examples/snapshots/providers-dns     (what the provider would give)
#   curl localhost:8080/v1/models

entrypoints "web" {
  address = "127.0.0.1:8080"
}

providers {
  dns {
    resolvers = ["127.0.0.1:53"]
    min_ttl   = "5s"
    max_ttl   = "5m"
    services = {
      llm = {
        servers  = [{ url = "http://llm.internal:8000" }, { srv = "_http._tcp.gpu.internal" }]
        strategy = "least-connections"
      }
    }
  }
}

routers "api" {
  rule    = "PathPrefix(`/v1`)"
  service = "llm@dns"
}
