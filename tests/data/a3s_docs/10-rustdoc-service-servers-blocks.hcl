# source: A3S-Lab/Gateway:src/config/service.rs (HCL-era, as in docs.rs/crate/a3s-gateway/0.2.x/source/src/config/service.rs), section "ServiceConfig / Example"
services "backend" {
  load_balancer {
    strategy = "round-robin"
    servers {
      url    = "http://127.0.0.1:8001"
      weight = 1
    }
    servers {
      url    = "http://127.0.0.1:8002"
      weight = 2
    }
  }
}
