# TCP proxying routed by TLS SNI (passthrough: the gateway reads the ClientHello's server name and
# forwards the encrypted stream untouched). The TCP data path lands with the TCP issue: until then
# `compile --check` rejects this file, each TCP key with "is not available yet" at its line
# (examples/later/ holds examples of features to come; tests/compiler/test_examples.py checks that
# nothing else is wrong with them).
entrypoints "tls-in" {
  address         = "0.0.0.0:8443"
  protocol        = "tcp"
  max_connections = 1000
  tcp_allowed_ips = ["10.0.0.0/8", "127.0.0.0/8"]
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
  }
}

services "inference-default" {
  load_balancer {
    servers = [{ address = "10.0.2.10:8443" }]
  }
}

middlewares "tcp-limits" { type = "tcp-filter"; max_connections = 200; allowed_ips = ["10.0.0.0/8"] }
