# source: A3S-Lab/Gateway:src/config/mod.rs (HCL-era, as in docs.rs/crate/a3s-gateway/0.2.x/source/src/config/mod.rs), section "GatewayConfig / HCL Example"
entrypoints "web" {
  address = "0.0.0.0:80"
}

routers "api" {
  rule    = "PathPrefix(`/api`)"
  service = "backend"
}

services "backend" {
  load_balancer {
    strategy = "round-robin"
  }
}
