# Automatic certificates over ACME: one certificate resolver per challenge (docs/tls.md).
#
#   make acme-demo     # a local pebble (Let's Encrypt's test CA), this file, a certificate
#
# As it is, the file orders a certificate for APP_HOST from Let's Encrypt's staging server
# with HTTP-01 on port 80 (the host must resolve to this machine from the internet). The
# variables point it elsewhere: ACME_DIRECTORY (any ACME server: production, a private CA, a
# local pebble with ACME_CA_BUNDLE), APP_RESOLVER (which resolver below gets the certificate).

entrypoints "web" {
  address = "${A3S_BIND:-0.0.0.0}:${A3S_HTTP_PORT:-80}"
}

entrypoints "websecure" {
  address = "${A3S_BIND:-0.0.0.0}:${A3S_HTTPS_PORT:-443}"
  tls { }   # no certificate of its own: its routers' resolvers provide them
}

# HTTP-01: the ACME server fetches /.well-known/acme-challenge/<token> from port 80. The
# gateway answers it on "web" above every router, so a catch-all or a redirect cannot shadow it.
certificate_resolvers "http" {
  acme {
    email     = "ops@example.com"
    directory = "${ACME_DIRECTORY:-https://acme-staging-v02.api.letsencrypt.org/directory}"
    ca_bundle = "${ACME_CA_BUNDLE:-}"
    storage   = "${ACME_STORAGE:-acme.json}"
    key_type  = "ec256"
    http_challenge { entrypoint = "web" }
  }
}

# TLS-ALPN-01: the ACME server opens a TLS connection to port 443 offering `acme-tls/1`, and
# the gateway answers with the challenge certificate on the TLS entrypoint.
certificate_resolvers "tls" {
  acme {
    email     = "ops@example.com"
    directory = "${ACME_DIRECTORY:-https://acme-staging-v02.api.letsencrypt.org/directory}"
    ca_bundle = "${ACME_CA_BUNDLE:-}"
    storage   = "${ACME_STORAGE:-acme.json}"
    tls_challenge { }
  }
}

# DNS-01: a TXT record through the DNS host's API; the only challenge for wildcard names.
certificate_resolvers "cloudflare" {
  acme {
    email     = "ops@example.com"
    directory = "${ACME_DIRECTORY:-https://acme-staging-v02.api.letsencrypt.org/directory}"
    storage   = "${ACME_STORAGE:-acme.json}"
    dns_challenge {
      provider  = "cloudflare"
      api_token = "${CF_API_TOKEN:-}"
    }
  }
}

certificate_resolvers "route53" {
  acme {
    email     = "ops@example.com"
    directory = "${ACME_DIRECTORY:-https://acme-staging-v02.api.letsencrypt.org/directory}"
    storage   = "${ACME_STORAGE:-acme.json}"
    dns_challenge {
      provider          = "route53"
      access_key_id     = "${AWS_ACCESS_KEY_ID:-}"
      secret_access_key = "${AWS_SECRET_ACCESS_KEY:-}"
      hosted_zone_id    = "${AWS_HOSTED_ZONE_ID:-}"
    }
  }
}

# The certificate for the router's Host() names comes from the resolver it names. A wildcard
# would be: tls { cert_resolver = "cloudflare"; domains { main = "*.example.com" } }.
routers "app" {
  rule        = "Host(`${APP_HOST:-app.example.com}`)"
  service     = "ping@internal"
  entrypoints = ["websecure"]
  tls { cert_resolver = "${APP_RESOLVER:-http}" }
}
