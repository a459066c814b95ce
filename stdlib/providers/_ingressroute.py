"""Traefik's CRDs (traefik.io/v1alpha1) to routers, services and middlewares.

    IngressRoute  routes[i]          -> routers "<ns>-<name>-<i>"   (match is the rule, v3 syntax)
                  routes[i].services -> a service of the pods' addresses (several: split by weight)
                                       (its scheme, h2c too, and passHostHeader kept)
                  routes[i].middlewares[j] -> "<ns>-<middleware>" (a name with `@` is kept: `auth@file`)
                  tls.secretName     -> a certificate (TLS is the entrypoint's, as for the files' routers)
    Middleware    one of stripPrefix, headers, ipAllowList, rateLimit, basicAuth, forwardAuth,
                  compress, retry, buffering -> the middleware kind doing the same job
    TLSOption     -> tls_options "<ns>-<name>" (minVersion, maxVersion, cipherSuites,
                  curvePreferences, alpnProtocols, sniStrict); an IngressRoute's tls.options
                  {name, namespace} -> its routers' tls { options }, chosen by the SNI of their
                  Host() names (docs/tls.md). clientAuth {secretNames, clientAuthType} ->
                  client_auth, each Secret's CA (tls.ca, else ca.crt) as PEM text in ca_files

Services of another namespace are refused unless `allow_cross_namespace` (Traefik's default).
A spec field we do not read, an unknown middleware type, a missing Service or Secret: a problem
naming the object (`IngressRoute default/api: routes.0.services.0.nativeLB: ...`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from ._crd_models import (
    MIDDLEWARE_SPECS,
    BasicAuth,
    Buffering,
    ClientAuth,
    Compress,
    ForwardAuth,
    Headers,
    IngressRouteSpec,
    IpAllowList,
    RateLimit,
    Retry,
    StripPrefix,
    TLSOptionSpec,
)
from ._found import Found, as_dict, safe_name
from ._ingress import Certificate, read_certificate
from ._kube_backends import Cluster, ServiceRef, add_service

__all__ = ["translate_crds"]


def _spec(found: Found, model: type[BaseModel], obj: dict[str, Any], origin: str) -> Any:
    try:
        return model.model_validate(obj.get("spec") or {})
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
            found.problem(origin, f"spec.{where}: {message}" if where else f"spec: {message}")
        return None


def translate_crds(
    found: Found, cluster: Cluster, entrypoints: list[str], allow_cross_namespace: bool
) -> list[Certificate]:
    """Add every TLSOption and Middleware, then every IngressRoute; return the certificates."""
    for (namespace, name), obj in cluster.items("tlsoptions"):
        _tls_option(found, cluster, namespace, name, obj)
    for (namespace, name), obj in cluster.items("middlewares"):
        _middleware(found, cluster, namespace, name, obj)
    certificates: list[Certificate] = []
    for (namespace, name), obj in cluster.items("ingressroutes"):
        origin = f"IngressRoute {namespace}/{name}"
        spec = _spec(found, IngressRouteSpec, obj, origin)
        if spec is not None:
            certificates += _route(
                found, cluster, namespace, name, spec, origin, entrypoints, allow_cross_namespace
            )
    return certificates


def _route(
    found: Found,
    cluster: Cluster,
    namespace: str,
    name: str,
    spec: IngressRouteSpec,
    origin: str,
    entrypoints: list[str],
    allow_cross_namespace: bool,
) -> list[Certificate]:
    certificates = []
    if spec.tls is not None and spec.tls.secretName:
        cert = read_certificate(found, cluster, namespace, spec.tls.secretName, origin)
        certificates += [cert] if cert is not None else []
    options = _options_of(found, cluster, namespace, spec, origin)
    for index, route in enumerate(spec.routes):
        refs = []
        for service in route.services:
            where = service.namespace or namespace
            if where != namespace and not allow_cross_namespace:
                found.problem(
                    origin, f"routes.{index}: Service {where}/{service.name} is in another namespace "
                    "(allow_cross_namespace = true allows it)",
                )  # fmt: skip
                break
            refs.append(
                ServiceRef(
                    where, service.name, service.port, service.weight, service.scheme, service.passHostHeader
                )
            )
        else:
            target = add_service(found, cluster, refs, origin)
            if target is None:
                continue
            router: dict[str, Any] = {"rule": route.match, "service": target}
            middlewares = [_middleware_name(m.name, m.namespace or namespace) for m in route.middlewares]
            if middlewares:
                router["middlewares"] = middlewares
            if route.priority:
                router["priority"] = route.priority
            if spec.entryPoints or entrypoints:
                router["entrypoints"] = list(spec.entryPoints or entrypoints)
            if options is not None:
                router["tls"] = {"options": options}
            found.add("routers", safe_name(namespace, name, index), router, origin)
    return certificates


_VERSIONS = {"VersionTLS12": "1.2", "VersionTLS13": "1.3"}


def _tls_option(found: Found, cluster: Cluster, namespace: str, name: str, obj: dict[str, Any]) -> None:
    """A TLSOption as `tls_options "<ns>-<name>"`, the keys Traefik's object sets."""
    origin = f"TLSOption {namespace}/{name}"
    spec = _spec(found, TLSOptionSpec, obj, origin)
    if spec is None:
        return
    body: dict[str, Any] = {}
    if spec.clientAuth is not None:
        client_auth = _client_auth(found, cluster, namespace, spec.clientAuth, origin)
        if client_auth is None:
            return
        body["client_auth"] = client_auth
    if spec.minVersion is not None:
        body["min_version"] = _VERSIONS[spec.minVersion]
    if spec.maxVersion is not None:
        body["max_version"] = _VERSIONS[spec.maxVersion]
    if spec.cipherSuites is not None:
        body["cipher_suites"] = list(spec.cipherSuites)
    if spec.curvePreferences is not None:
        body["curve_preferences"] = list(spec.curvePreferences)
    if spec.alpnProtocols is not None:
        body["alpn_protocols"] = list(spec.alpnProtocols)
    if spec.sniStrict:
        body["sni_strict"] = True
    found.add("tls_options", safe_name(namespace, name), body, origin)


def _client_auth(
    found: Found, cluster: Cluster, namespace: str, spec: ClientAuth, origin: str
) -> dict[str, Any] | None:
    """`client_auth` with the CA certificates of the Secrets named (their PEM text in ca_files);
    None after a problem."""
    if spec.clientAuthType in ("RequestClientCert", "RequireAnyClientCert"):
        found.problem(
            origin,
            f"spec.clientAuth.clientAuthType {spec.clientAuthType} asks for a certificate it does not "
            "verify: Python's ssl verifies what it asks for (use VerifyClientCertIfGiven)",
        )
        return None
    cas = [_client_ca(found, cluster, namespace, secret, origin) for secret in spec.secretNames]
    if any(ca is None for ca in cas):
        return None
    return {"ca_files": cas, **_given(client_auth_type=spec.clientAuthType)}


def _client_ca(found: Found, cluster: Cluster, namespace: str, secret: str, origin: str) -> str | None:
    """The CA PEM of a clientAuth Secret: its `tls.ca`, else its `ca.crt` (Traefik's order)."""
    obj = cluster.get("secrets", namespace, secret)
    if obj is None:
        found.problem(origin, f"clientAuth Secret {namespace}/{secret} does not exist")
        return None
    data = as_dict(obj.get("data"))
    key = next((k for k in ("tls.ca", "ca.crt") if k in data), None)
    if key is None:
        found.problem(origin, f"clientAuth Secret {namespace}/{secret} contains neither tls.ca nor ca.crt")
        return None
    # Imported here: cryptography is ~10 MiB resident, and only a clientAuth needs it.
    from cryptography import x509

    try:
        pem = base64.b64decode(str(data[key]), validate=True)
        x509.load_pem_x509_certificates(pem)
        text = pem.decode()
    except (binascii.Error, ValueError):  # ValueError: UnicodeDecodeError too
        found.problem(origin, f"clientAuth Secret {namespace}/{secret}: {key} is not a PEM CA certificate")
        return None
    return text


def _options_of(
    found: Found, cluster: Cluster, namespace: str, spec: IngressRouteSpec, origin: str
) -> str | None:
    """The tls_options name an IngressRoute's `tls.options` stands for (None: none, or one that
    does not exist: a problem, which rejects the fragment)."""
    option = spec.tls.options if spec.tls is not None else None
    if option is None:
        return None
    where = option.namespace or namespace
    if cluster.get("tlsoptions", where, option.name) is None:
        found.problem(origin, f"tls.options names TLSOption {where}/{option.name}, which does not exist")
        return None
    return safe_name(where, option.name)


def _middleware_name(name: str, namespace: str) -> str:
    # `auth@file` names another provider's middleware, as in Traefik; else this provider's.
    return name if "@" in name else safe_name(namespace, name)


def _middleware(found: Found, cluster: Cluster, namespace: str, name: str, obj: dict[str, Any]) -> None:
    origin = f"Middleware {namespace}/{name}"
    spec = as_dict(obj.get("spec"))
    kinds = list(spec)
    if len(kinds) != 1 or kinds[0] not in MIDDLEWARE_SPECS:
        supported = ", ".join(MIDDLEWARE_SPECS)
        found.problem(
            origin, f"spec needs exactly one middleware type of: {supported} (got {kinds or 'none'})"
        )
        return
    model = MIDDLEWARE_SPECS[kinds[0]]
    options = _spec(found, model, {"spec": spec[kinds[0]]}, origin)
    if options is None:
        return
    body = _TRANSLATE[model](options, lambda secret: _users(found, cluster, namespace, secret, origin))
    if body is not None:
        found.add("middlewares", safe_name(namespace, name), body, origin)


def _users(found: Found, cluster: Cluster, namespace: str, secret: str, origin: str) -> list[str] | None:
    """htpasswd lines from a Secret: its `users` key, or a kubernetes.io/basic-auth pair."""
    obj = cluster.get("secrets", namespace, secret)
    data = obj.get("data") if obj is not None and isinstance(obj.get("data"), dict) else None
    if data is None:
        found.problem(origin, f"basicAuth Secret {namespace}/{secret} does not exist")
        return None
    try:
        decoded = {k: base64.b64decode(str(v), validate=True).decode() for k, v in data.items()}
    except (binascii.Error, UnicodeDecodeError):
        found.problem(origin, f"basicAuth Secret {namespace}/{secret}: a value is not base64 text")
        return None
    if "users" in decoded:
        return [line for line in decoded["users"].splitlines() if line.strip()]
    if "username" in decoded and "password" in decoded:
        # A kubernetes.io/basic-auth Secret holds the password itself: said so, so that one
        # that happens to look like a hash (`$apr1$...`) is not read as one.
        return [f"{decoded['username']}:{{PLAIN}}{decoded['password']}"]
    found.problem(origin, f"basicAuth Secret {namespace}/{secret} has neither users nor username/password")
    return None


def _headers(spec: Headers) -> dict[str, Any]:
    # Traefik: a custom header with an empty value is removed.
    return {
        "type": "headers",
        "request_headers": {k: v for k, v in spec.customRequestHeaders.items() if v},
        "response_headers": {k: v for k, v in spec.customResponseHeaders.items() if v},
        "remove_request_headers": [k for k, v in spec.customRequestHeaders.items() if not v],
        "remove_response_headers": [k for k, v in spec.customResponseHeaders.items() if not v],
    }


def _given(**values: Any) -> dict[str, Any]:
    """The options Traefik's object sets (None: left to our kind's default)."""
    return {key: value for key, value in values.items() if value is not None}


def _ip_allow(spec: IpAllowList) -> dict[str, Any]:
    strategy = spec.ipStrategy
    return {
        "type": "ip-allow",
        "allowed_ips": spec.sourceRange,
        **_given(
            ip_strategy=None
            if strategy is None
            else {"depth": strategy.depth, "excluded_ips": strategy.excludedIPs},
            reject_status=spec.rejectStatusCode,
        ),
    }


def _rate_limit(spec: RateLimit) -> dict[str, Any]:
    return {"type": "rate-limit", "rate": spec.average, **_given(period=spec.period, burst=spec.burst)}


def _basic_auth(spec: BasicAuth, users: Callable[[str], list[str] | None]) -> dict[str, Any] | None:
    lines = users(spec.secret)
    if lines is None:
        return None
    return {
        "type": "basic-auth",
        "users": lines,
        **_given(realm=spec.realm, header_field=spec.headerField, remove_header=spec.removeHeader),
    }


def _forward_auth(spec: ForwardAuth) -> dict[str, Any]:
    return {
        "type": "forward-auth",
        "forward_auth_url": spec.address,
        "forward_auth_response_headers": spec.authResponseHeaders,
        **_given(
            auth_request_headers=spec.authRequestHeaders,
            tls_verify=None if spec.tls is None else not spec.tls.insecureSkipVerify,
        ),
    }


def _compress(spec: Compress) -> dict[str, Any]:
    return {
        "type": "compress",
        **_given(
            excluded_content_types=spec.excludedContentTypes,
            min_length=spec.minResponseBodyBytes,
            algorithms=spec.encodings,
        ),
    }


def _retry(spec: Retry) -> dict[str, Any]:
    # Traefik's `attempts` counts the first try too.
    interval = spec.initialInterval
    return {
        "type": "retry",
        "max_retries": spec.attempts - 1,
        **_given(retry_interval_ms=None if interval is None else round(interval * 1000)),
    }


_TRANSLATE: dict[
    type[BaseModel], Callable[[Any, Callable[[str], list[str] | None]], dict[str, Any] | None]
] = {
    StripPrefix: lambda s, _: {"type": "strip-prefix", "prefixes": s.prefixes},
    Headers: lambda s, _: _headers(s),
    IpAllowList: lambda s, _: _ip_allow(s),
    RateLimit: lambda s, _: _rate_limit(s),
    BasicAuth: _basic_auth,
    ForwardAuth: lambda s, _: _forward_auth(s),
    Compress: lambda s, _: _compress(s),
    Retry: lambda s, _: _retry(s),
    Buffering: lambda s, _: {"type": "body-limit", "max_body_bytes": s.maxRequestBodyBytes},
}
