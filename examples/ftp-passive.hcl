# FTP through one TCP entrypoint, passive mode rewritten by the gateway (docs/l4.md, FTP): the
# server's 227/229 replies are rewritten to name the gateway and a port of `passive_ports`, where
# the gateway takes the client's data connection and relays it to the port the server named.
# The FTP server needs no passive setting of its own.
#
#   python -m pyftpdlib -i 10.0.4.10 -p 21 -w
#   a3s-gateway run --config examples/ftp-passive.hcl
#   curl -T file ftp://127.0.0.1:2121/ ; curl -o copy ftp://127.0.0.1:2121/file
entrypoints "ftp" {
  address  = "0.0.0.0:2121"
  protocol = "tcp"
  timeouts { idle = "300s" }   # a control connection waits while a long transfer runs
}

# FTP servers speak first (220): a router without tls, so no ClientHello is awaited.
tcp_routers "ftp" {
  service     = "ftp"
  entrypoints = ["ftp"]
}

services "ftp" {
  load_balancer { servers = [{ address = "10.0.4.10:21" }] }
  ftp {
    passive_ports = "30000-30003"   # one port per transfer in progress
    # passive_address = "203.0.113.7"   # what 227 replies name, behind NAT (default: the address reached)
  }
}
