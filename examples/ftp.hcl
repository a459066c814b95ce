# FTP through TCP entrypoints, passive mode by the backend-side method (docs/l4.md, FTP): the FTP
# server announces the gateway's address in its 227/229 replies (a masqueraded address) and
# opens its passive data ports in a fixed range; the gateway relays the control port and each
# port of that range, one to one, to the server. pyftpdlib: `masquerade_address` and
# `passive_ports`; vsftpd: `pasv_address`, `pasv_min_port` and `pasv_max_port`; ProFTPD:
# `MasqueradeAddress` and `PassivePorts`.
#
#   python -m pyftpdlib -i 10.0.4.10 -p 21 -n <gateway address> -r 30000-30003 -w
#   a3s-gateway run --config examples/ftp.hcl
#   curl -T file ftp://127.0.0.1:2121/ ; curl -o copy ftp://127.0.0.1:2121/file
entrypoints "ftp" {
  address  = "0.0.0.0:2121"
  protocol = "tcp"
  timeouts { idle = "300s" }   # a control connection waits while a long transfer runs
}
entrypoints "ftp-data-30000" {
  address  = "0.0.0.0:30000"
  protocol = "tcp"
}
entrypoints "ftp-data-30001" {
  address  = "0.0.0.0:30001"
  protocol = "tcp"
}
entrypoints "ftp-data-30002" {
  address  = "0.0.0.0:30002"
  protocol = "tcp"
}
entrypoints "ftp-data-30003" {
  address  = "0.0.0.0:30003"
  protocol = "tcp"
}

# FTP servers speak first (220): routers without tls, so no ClientHello is awaited.
tcp_routers "ftp" {
  service     = "ftp"
  entrypoints = ["ftp"]
}
tcp_routers "ftp-data-30000" {
  service     = "ftp-data-30000"
  entrypoints = ["ftp-data-30000"]
}
tcp_routers "ftp-data-30001" {
  service     = "ftp-data-30001"
  entrypoints = ["ftp-data-30001"]
}
tcp_routers "ftp-data-30002" {
  service     = "ftp-data-30002"
  entrypoints = ["ftp-data-30002"]
}
tcp_routers "ftp-data-30003" {
  service     = "ftp-data-30003"
  entrypoints = ["ftp-data-30003"]
}

services "ftp" {
  load_balancer { servers = [{ address = "10.0.4.10:21" }] }
}
services "ftp-data-30000" {
  load_balancer { servers = [{ address = "10.0.4.10:30000" }] }
}
services "ftp-data-30001" {
  load_balancer { servers = [{ address = "10.0.4.10:30001" }] }
}
services "ftp-data-30002" {
  load_balancer { servers = [{ address = "10.0.4.10:30002" }] }
}
services "ftp-data-30003" {
  load_balancer { servers = [{ address = "10.0.4.10:30003" }] }
}
