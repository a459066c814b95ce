# DNS through the gateway (docs/l4.md): one port, UDP and TCP. UDP datagrams are relayed in
# sessions keyed by the client's address (a resolver's query and its answer are one session);
# DNS over TCP (large answers, zone transfers) goes through a TCP entrypoint on the same port.
# A server that stops answering (ICMP port unreachable) is marked by passive health, and the
# resolver's retry goes to the other one.
#
#   a3s-gateway run --config examples/dns.hcl
#   dig @127.0.0.1 -p 5353 app.test            (UDP)
#   dig @127.0.0.1 -p 5353 app.test +tcp       (TCP)
entrypoints "dns" {
  address                  = "0.0.0.0:5353"
  protocol                 = "udp"
  udp_session_timeout_secs = 10     # a query and its answer take milliseconds
  udp_max_sessions         = 50000  # past it, the session idle longest is evicted
}

entrypoints "dns-tcp" {
  address  = "0.0.0.0:5353"
  protocol = "tcp"
  timeouts { idle = "30s" }
}

# UDP routers have no rule: one router, one service, per UDP entrypoint (as in Traefik).
udp_routers "dns" {
  service     = "resolvers"
  entrypoints = ["dns"]
}

tcp_routers "dns" {
  rule        = "HostSNI(`*`)"
  service     = "resolvers"
  entrypoints = ["dns-tcp"]
}

services "resolvers" {
  load_balancer {
    strategy = "least-connections"   # counts open UDP sessions and TCP connections
    servers  = [{ address = "10.0.3.10:53" }, { address = "10.0.3.11:53" }]
    passive_health {
      max_failures = 1
      cooldown     = "30s"
    }
  }
}
