# source: https://docs.rs/crate/a3s-gateway/0.2.1/source/src/config/entrypoint.rs, section "EntrypointConfig / Example"
entrypoints "websecure" {
  address  = "0.0.0.0:443"
  protocol = "http"
  tls {
    cert_file = "/etc/certs/cert.pem"
    key_file  = "/etc/certs/key.pem"
  }
}
