# TLS options chosen by SNI (docs/tls.md#tls-options-by-sni): one HTTPS entrypoint, three hosts,
# three sets of handshake settings.
entrypoints "websecure" {
  address = "0.0.0.0:8443"
  tls {
    certificates = [
      { cert_file = "/etc/a3s/api.crt", key_file = "/etc/a3s/api.key" },
      { cert_file = "/etc/a3s/partners.crt", key_file = "/etc/a3s/partners.key" },
      { cert_file = "/etc/a3s/www.crt", key_file = "/etc/a3s/www.key" },
    ]
  }
}

# api.example.com: TLS 1.3 only.
tls_options "modern" {
  min_version = "1.3"
}

# partners.example.com: a client certificate signed by the partners' CA, TLS 1.2 allowed.
tls_options "partners" {
  client_auth {
    ca_files = ["/etc/a3s/partners-ca.pem"]
  }
}

# Every other handshake (www.example.com, no SNI): refused unless a certificate names the SNI.
tls_options "default" {
  sni_strict = true
}

routers "api" {
  rule    = "Host(`api.example.com`)"
  service = "llm"
  tls { options = "modern" }
}

routers "partners" {
  rule    = "Host(`partners.example.com`)"
  service = "llm"
  tls { options = "partners" }
}

routers "www" {
  rule    = "Host(`www.example.com`)"
  service = "llm"
}

services "llm" {
  load_balancer {
    servers = [{ url = "http://127.0.0.1:8000" }]
  }
}
