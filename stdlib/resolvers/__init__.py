"""DNS-01 providers of ACME certificate resolvers: each one publishes and removes the TXT record
`_acme-challenge.<domain>` through a DNS host's API (`dns_challenge { provider = "..." }`)."""
