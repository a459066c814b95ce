"""Certificate resolvers: `certificate_resolvers "le" { acme { ... } }`, as Traefik names them.

A resolver says where certificates come from (an ACME server), how its challenges are answered
(HTTP-01 on a plain entrypoint, TLS-ALPN-01 on the TLS entrypoint, or DNS-01 through a DNS
provider) and where they are kept. Routers use one with `tls { cert_resolver = "le" }`; an
entrypoint's `tls { acme = true ... }` (the A3S spelling) is a resolver of its own
(compiler/acme.py builds both into one plan).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .model import SECRET_ENTRIES, ConfigModel
from .units import Duration

__all__ = [
    "LETS_ENCRYPT",
    "LETS_ENCRYPT_STAGING",
    "AcmeConfig",
    "CertificateResolverConfig",
    "DnsChallenge",
    "HttpChallenge",
    "TlsChallenge",
]

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"


class HttpChallenge(ConfigModel):
    """HTTP-01: `/.well-known/acme-challenge/<token>` is answered on this plain entrypoint (port
    80 for a public CA) before any router."""

    entrypoint: str = Field(description="The plain HTTP entrypoint the ACME server connects to.")


class TlsChallenge(ConfigModel):
    """TLS-ALPN-01: handshakes offering `acme-tls/1` get the challenge certificate on the TLS
    entrypoints that serve the resolver's names (port 443 for a public CA)."""


class DnsChallenge(ConfigModel):
    """DNS-01: a TXT record `_acme-challenge.<domain>` through a DNS provider's API. The
    provider's own keys (`api_token`, `access_key_id` ...) sit beside `provider` and are
    validated by its kind (stdlib/resolvers/)."""

    provider: str = Field(description='The DNS provider kind: "cloudflare", "route53", "challtestsrv".')
    propagation_timeout: Duration = Field(
        default=120.0, description="How long the TXT record may take to reach every authoritative server."
    )
    polling_interval: Duration = Field(default=2.0, description="How often propagation is checked.")
    resolvers: list[str] = Field(
        default=[],
        description='DNS servers ("host:port") that find the zone\'s authoritative servers; '
        "default: the system's.",
    )
    options: dict[str, Any] = Field(
        default={},
        json_schema_extra=SECRET_ENTRIES,
        description="Set by the provider's keys written beside `provider`.",
    )

    @model_validator(mode="before")
    @classmethod
    def _provider_keys(cls, data: Any) -> Any:
        # The provider's keys are written flat in the block (Traefik and lego do the same); they
        # are kept apart here and validated by the provider's kind at lowering.
        if not isinstance(data, dict) or "options" in data:
            return data
        own = {name for name in cls.model_fields if name != "options"}
        return {
            **{k: v for k, v in data.items() if k in own},
            "options": {k: v for k, v in data.items() if k not in own},
        }


class AcmeConfig(ConfigModel):
    email: str | None = Field(default=None, description="The ACME account's contact address.")
    directory: str = Field(default=LETS_ENCRYPT, description="The ACME server's directory URL.")
    ca_bundle: str | None = Field(
        default=None, description="A PEM file of CAs trusted for `directory` (a private CA, a local pebble)."
    )
    storage: str = Field(
        default="acme.json",
        description="One JSON file (mode 0600) holding the account key and the certificates.",
    )
    key_type: Literal["ec256", "ec384", "rsa2048", "rsa4096"] = Field(
        default="ec256", description="The certificates' key type."
    )
    redis_url: str | None = Field(
        default=None,
        description="Several gateway instances: order under a Redis lock (else a file lock beside storage).",
    )
    renew_before: float = Field(
        default=1 / 3,
        gt=0,
        lt=1,
        description="Renew when this fraction of the lifetime is left (ARI's window comes first).",
    )
    retry_initial: Duration = Field(
        default=60.0,
        gt=0,
        description="After a failed order, wait this long; doubled at each failure in a row.",
    )
    retry_max: Duration = Field(default=86400.0, gt=0, description="The longest wait between failed orders.")
    http_challenge: HttpChallenge | None = None
    tls_challenge: TlsChallenge | None = None
    dns_challenge: DnsChallenge | None = None

    @model_validator(mode="after")
    def _one_challenge(self) -> AcmeConfig:
        given = [c for c in (self.http_challenge, self.tls_challenge, self.dns_challenge) if c is not None]
        if len(given) != 1:
            raise ValueError(
                "an acme block needs exactly one of http_challenge, tls_challenge, dns_challenge"
            )
        return self

    @property
    def challenge(self) -> Literal["http-01", "tls-alpn-01", "dns-01"]:
        if self.http_challenge is not None:
            return "http-01"
        return "tls-alpn-01" if self.tls_challenge is not None else "dns-01"


class CertificateResolverConfig(ConfigModel):
    acme: AcmeConfig
