# source: https://docs.rs/crate/a3s-gateway/0.2.1/source/src/config/middleware.rs, section "MiddlewareConfig / Example"
middlewares "auth" {
  type   = "api-key"
  header = "X-API-Key"
  keys   = ["secret-key-1", "secret-key-2"]
}

middlewares "rate-limit" {
  type  = "rate-limit"
  rate  = 100
  burst = 50
}
