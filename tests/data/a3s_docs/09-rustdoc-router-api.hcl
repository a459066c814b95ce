# source: A3S-Lab/Gateway:src/config/router.rs (HCL-era, as in docs.rs/crate/a3s-gateway/0.2.x/source/src/config/router.rs), section "RouterConfig / Example"
routers "api" {
  rule        = "Host(`api.example.com`) && PathPrefix(`/v1`)"
  service     = "api-backend"
  entrypoints = ["websecure"]
  middlewares  = ["auth", "rate-limit"]
  priority    = 10
}
