# source: A3S-Lab/Gateway:src/config/service.rs (HCL-era), section "FailoverConfig / Example"
services "backend" {
  failover {
    service = "backup-backend"
  }
}
