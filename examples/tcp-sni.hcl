# TCP proxying routed by TLS SNI (docs/l4.md). TLS clients asking for `a.models.internal` are
# passed through: the gateway reads the server name in the ClientHello and forwards the
# encrypted bytes untouched, so the backends hold the certificate. Plaintext clients (no TLS)
# go to the catch-all router, as in Traefik (a TLS client with another name is closed).
#
#   a3s-gateway run --config examples/tcp-sni.hcl
#   openssl s_client -connect 127.0.0.1:8443 -servername a.models.internal
entrypoints "tls-in" {
  address         = "0.0.0.0:8443"
  protocol        = "tcp"
  max_connections = 1000
  tcp_allowed_ips = ["10.0.0.0/8", "127.0.0.0/8"]
  timeouts { read_header = "5s" }   # a client gets this long to send its ClientHello
}

tcp_routers "inference-a" {
  rule        = "HostSNI(`a.models.internal`)"
  service     = "inference-a"
  entrypoints = ["tls-in"]
  tls { passthrough = true }
}

# The A3S docs spelling: an ordinary `routers` block on a TCP entrypoint is a TCP router.
routers "catch-all" {
  rule        = "HostSNI(`*`)"
  service     = "inference-default"
  entrypoints = ["tls-in"]
  middlewares = ["tcp-limits"]
}

services "inference-a" {
  load_balancer {
    servers = [{ address = "10.0.1.10:8443" }, { address = "10.0.1.11:8443" }]
    health_check {
      interval = "5s"
      timeout  = "2s"
    }
  }
}

services "inference-default" {
  load_balancer {
    servers = [{ address = "10.0.2.10:8443" }]
  }
}

middlewares "tcp-limits" {
  type            = "tcp-filter"
  max_connections = 200
  allowed_ips     = ["10.0.0.0/8", "127.0.0.0/8"]
}
