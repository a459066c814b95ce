# source: A3S-Lab/Gateway:src/config/service.rs (HCL-era), section "MirrorConfig / Example"
services "backend" {
  mirror {
    service    = "shadow-backend"
    percentage = 10
  }
}
