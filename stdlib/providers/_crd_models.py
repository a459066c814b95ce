"""The fields of Traefik's CRDs (traefik.io/v1alpha1) that the kubernetes provider reads.

Each spec is read by a pydantic model with `extra="forbid"`, so a field we do not know (a typo,
or a Traefik option with no counterpart here) is a problem naming the object and the field
rather than a setting silently dropped. Field names are Traefik's (camelCase).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...compiler.units import parse_duration

__all__ = [
    "MIDDLEWARE_SPECS",
    "IngressRouteSpec",
    "TLSOptionSpec",
]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObjectRef(_Spec):
    name: str
    namespace: str | None = None


class RouteService(_Spec):
    name: str
    namespace: str | None = None
    kind: Literal["Service"] = "Service"  # TraefikService (weighted/mirroring trees) is not read
    port: int | str | None = None
    scheme: Literal["http", "https", "h2c"] | None = None
    weight: int | None = Field(default=None, ge=0)
    passHostHeader: bool | None = None


class Route(_Spec):
    match: str
    kind: Literal["Rule"] = "Rule"
    priority: int | None = None
    syntax: Literal["v3"] | None = None  # v2 rules are refused, as in the files
    middlewares: list[ObjectRef] = []
    services: list[RouteService] = Field(default=[], min_length=1)


class RouteTls(_Spec):
    secretName: str | None = None
    options: ObjectRef | None = None


class IngressRouteSpec(_Spec):
    entryPoints: list[str] = []
    routes: list[Route] = Field(min_length=1)
    tls: RouteTls | None = None


class ClientAuth(_Spec):
    secretNames: list[str] = []
    # Go's five; RequestClientCert and RequireAnyClientCert are refused by the translation.
    clientAuthType: (
        Literal[
            "NoClientCert",
            "RequestClientCert",
            "RequireAnyClientCert",
            "VerifyClientCertIfGiven",
            "RequireAndVerifyClientCert",
        ]
        | None
    ) = None


class TLSOptionSpec(_Spec):
    minVersion: Literal["VersionTLS12", "VersionTLS13"] | None = None
    maxVersion: Literal["VersionTLS12", "VersionTLS13"] | None = None
    alpnProtocols: list[str] | None = None
    cipherSuites: list[str] | None = None
    curvePreferences: list[str] | None = None
    clientAuth: ClientAuth | None = None
    sniStrict: bool | None = None


# -- Middleware specs: one key of these per Middleware, named as in Traefik ------------------


class StripPrefix(_Spec):
    prefixes: list[str] = Field(min_length=1)


class Headers(_Spec):
    customRequestHeaders: dict[str, str] = {}
    customResponseHeaders: dict[str, str] = {}


class IpStrategy(_Spec):
    depth: int = 0
    excludedIPs: list[str] = []


class IpAllowList(_Spec):
    sourceRange: list[str] = Field(min_length=1)
    ipStrategy: IpStrategy | None = None
    rejectStatusCode: int | None = None


class RateLimit(_Spec):
    average: int = Field(ge=1)
    period: str | int | None = None
    burst: int | None = Field(default=None, ge=1)


class BasicAuth(_Spec):
    secret: str
    realm: str | None = None
    headerField: str | None = None
    removeHeader: bool | None = None


class ForwardAuthTls(_Spec):
    insecureSkipVerify: bool = False


class ForwardAuth(_Spec):
    address: str
    authResponseHeaders: list[str] = []
    authRequestHeaders: list[str] | None = None
    tls: ForwardAuthTls | None = None


class Compress(_Spec):
    excludedContentTypes: list[str] | None = None
    minResponseBodyBytes: int | None = None
    encodings: list[str] | None = None


class Retry(_Spec):
    attempts: int = Field(ge=1)
    initialInterval: float | None = None  # seconds, read from "100ms" (Traefik's Go durations)

    @field_validator("initialInterval", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return value if value is None else parse_duration(value)


class Buffering(_Spec):
    maxRequestBodyBytes: int = Field(ge=1)


MIDDLEWARE_SPECS: dict[str, type[_Spec]] = {
    "stripPrefix": StripPrefix,
    "headers": Headers,
    "ipAllowList": IpAllowList,
    "rateLimit": RateLimit,
    "basicAuth": BasicAuth,
    "forwardAuth": ForwardAuth,
    "compress": Compress,
    "retry": Retry,
    "buffering": Buffering,
}
