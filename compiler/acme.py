"""The ACME plan: which resolver gets which certificates, and the checks that go with it.

Two spellings meet here. Traefik's: `certificate_resolvers "le" { acme { ... } }` used by routers
(`tls { cert_resolver = "le" }`), whose certificates are named by the router's `tls.domains`, or
else by the `Host()` names of its rule, one certificate per router; a TLS-terminating TCP router
(`tcp_routers`) likewise, by its `HostSNI()` names. The A3S documentation's:
`tls { acme = true, acme_domains = [...] }` on an entrypoint, a resolver of that entrypoint
(named `<entrypoint>@acme`) that answers TLS-ALPN-01 on it, for `acme_domains` (one certificate)
or else the `Host()` names of the routers on it.

The same walk serves the compiler (`check_acme`, errors at file:line:col: an unknown resolver,
a wildcard asked of a challenge other than DNS-01, an HTTP-01 entrypoint that is not plain HTTP,
a TLS entrypoint with no certificate from anywhere, a TCP router with nothing to order: HostSNI(`*`)
and no domains, or passthrough) and the runtime (`acme_plan`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..stdlib import registry
from .diagnostics import Diagnostics, did_you_mean
from .ir import IRGraph
from .resolvers import LETS_ENCRYPT, LETS_ENCRYPT_STAGING, AcmeConfig, DnsChallenge, TlsChallenge
from .rules import parse_rule
from .rules.ast import iter_matchers
from .schema import EntrypointConfig, RouterConfig, RouterTls, Settings, TcpRouterConfig, TlsConfig
from .validate import validate_block

if TYPE_CHECKING:  # merge.py reads the files: a running gateway does not load it
    from .merge import SpanMap

__all__ = [
    "ENTRYPOINT_RESOLVER_SUFFIX",
    "PlacedRouter",
    "ResolverPlan",
    "acme_plan",
    "check_acme",
    "entrypoint_resolver",
    "placed_routers",
]

ENTRYPOINT_RESOLVER_SUFFIX = "@acme"
Path = tuple[str | int, ...]
# (message, where, hint): how the walk reports a problem; the runtime's plan ignores them.
Report = Callable[[str, Path, str | None], None]


@dataclass(frozen=True)
class ResolverPlan:
    """One resolver's work: its ACME settings, the certificates to hold (each a tuple of names,
    the first its main name) and the TLS entrypoints that serve them."""

    name: str
    acme: AcmeConfig
    certificates: tuple[tuple[str, ...], ...]
    entrypoints: tuple[str, ...]


@dataclass(frozen=True)
class PlacedRouter:
    """A router with the entrypoints it serves and where it is written (the checks' view of it;
    compiler/tls_options.py walks these too)."""

    name: str
    config: RouterConfig | TcpRouterConfig
    entrypoints: tuple[str, ...]
    path: Path

    @property
    def tcp(self) -> bool:
        return isinstance(self.config, TcpRouterConfig)

    @property
    def what(self) -> str:
        return f"TCP router '{self.name}'" if self.tcp else f"router '{self.name}'"

    def names(self) -> tuple[str, ...]:
        """The server names of its rule: `Host()` ones, a TCP router's `HostSNI()` ones."""
        return host_sni_names(self.config.rule) if self.tcp else host_names(self.config.rule)


def placed_routers(ir: IRGraph) -> list[PlacedRouter]:
    """The HTTP and TCP routers of a checked IR (no source paths: the runtime's plans)."""
    return [
        PlacedRouter(n.name, n.config, tuple(n.attrs.get("entrypoints", ())), ())
        for kind in ("router", "tcp_router")
        for n in ir.by_kind(kind)
        if isinstance(n.config, RouterConfig | TcpRouterConfig)
    ]


def entrypoint_resolver(name: str, config: EntrypointConfig) -> AcmeConfig | None:
    """The resolver an entrypoint's `tls { acme = true ... }` stands for (None without it)."""
    tls = config.tls
    if tls is None or not tls.acme:
        return None
    directory = tls.acme_directory or (LETS_ENCRYPT_STAGING if tls.acme_staging else LETS_ENCRYPT)
    return AcmeConfig(
        email=tls.acme_email,
        directory=directory,
        ca_bundle=tls.acme_ca_bundle,
        storage=tls.acme_storage_path or "acme.json",
        tls_challenge=TlsChallenge(),
    )


def acme_plan(ir: IRGraph) -> tuple[ResolverPlan, ...]:
    """Every resolver that has certificates to get, for the runtime (the IR is checked)."""
    settings = ir.settings if isinstance(ir.settings, Settings) else Settings()
    entrypoints = {
        n.name: n.config for n in ir.by_kind("entrypoint") if isinstance(n.config, EntrypointConfig)
    }
    if not settings.certificate_resolvers and not any(
        entrypoint_resolver(name, config) for name, config in entrypoints.items()
    ):
        # No resolver: nothing to plan, and no walk over every router. A reload of 10,000
        # routers spent 0.3 s here (mostly the collector, run by the walk's allocations).
        return ()
    routers = placed_routers(ir)
    return tuple(p for p in _walk(settings, entrypoints, routers, lambda *_: None) if p.certificates)


def check_acme(
    settings: Settings,
    entrypoints: Mapping[str, EntrypointConfig],
    routers: list[tuple[str, RouterConfig | TcpRouterConfig, list[str], Path]],
    spans: SpanMap,
    diags: Diagnostics,
) -> None:
    """Report every ACME problem of the configuration at its line (`routers`: HTTP and TCP
    routers, each with its entrypoints and where it is written)."""

    def report(message: str, path: Path, hint: str | None) -> None:
        diags.error(message, spans.find(path), hint=hint)

    found = [PlacedRouter(n, c, tuple(eps), path) for n, c, eps, path in routers]
    plans = list(_walk(settings, entrypoints, found, report))
    for name, resolver in settings.certificate_resolvers.items():
        if resolver.acme.dns_challenge is not None:
            _check_dns_provider(name, resolver.acme.dns_challenge, spans, diags)
    _check_certificates_exist(entrypoints, found, report)
    if plans and not acme_installed():
        name = plans[0].name
        ep = name.removesuffix(ENTRYPOINT_RESOLVER_SUFFIX)
        where: Path = ("entrypoints", ep, "tls", "acme") if name != ep else ("certificate_resolvers", name)
        report("automatic certificates need the `acme` extra", where, "pip install 'a3s-gateway[acme]'")


def _check_dns_provider(resolver: str, config: DnsChallenge, spans: SpanMap, diags: Diagnostics) -> None:
    """The provider is a known kind, and its keys (beside `provider`) validate against its model."""
    path: Path = ("certificate_resolvers", resolver, "acme", "dns_challenge")
    kind = registry.lookup("dns_provider", config.provider)
    if kind is None:
        known = registry.names("dns_provider")
        diags.error(
            f"resolver '{resolver}': unknown DNS provider '{config.provider}'",
            spans.find((*path, "provider")),
            hint=did_you_mean(config.provider, known) or "known providers: " + ", ".join(known),
        )
        return
    validate_block(
        kind.config, config.options, path, spans, diags, what=f"resolver '{resolver}': {kind.name}"
    )


def acme_installed() -> bool:
    """Whether the `acme` extra is installed (found, not imported: compiling stays cheap)."""
    try:
        return importlib.util.find_spec("acme.client") is not None
    except (ImportError, ValueError):
        return False


def _walk(
    settings: Settings,
    entrypoints: Mapping[str, EntrypointConfig],
    routers: list[PlacedRouter],
    report: Report,
) -> Iterator[ResolverPlan]:
    resolvers = {name: r.acme for name, r in settings.certificate_resolvers.items()}
    for name, acme in resolvers.items():
        _check_http_entrypoint(name, acme, entrypoints, report)
    certificates: dict[str, list[tuple[str, ...]]] = {name: [] for name in resolvers}
    served: dict[str, set[str]] = {name: set() for name in resolvers}
    for router in routers:
        tls = router.config.tls
        if not isinstance(tls, RouterTls) or tls.cert_resolver is None:
            continue
        wanted = tls.cert_resolver
        where: Path = (*router.path, "tls", "cert_resolver")
        if wanted not in resolvers:
            hint = did_you_mean(wanted, resolvers) or _known(resolvers)
            report(f"{router.what} uses unknown certificate resolver '{wanted}'", where, hint)
            continue
        if router.tcp and tls.passthrough:
            report(
                f"{router.what} forwards TLS (passthrough) and so serves no certificate, "
                f"but uses certificate resolver '{wanted}'",
                where,
                "remove passthrough = true to terminate TLS with the resolver's certificate",
            )
            continue
        tls_entrypoints = [e for e in router.entrypoints if entrypoints[e].tls is not None]
        if not tls_entrypoints:
            report(
                f"{router.what} uses certificate resolver '{wanted}' but none of its "
                "entrypoints has a tls block",
                where,
                "add tls { } to the entrypoint the router serves on",
            )
            continue
        served[wanted].update(tls_entrypoints)
        if router.tcp and not tls.domains and not host_sni_names(router.config.rule):
            report(
                f"{router.what} uses certificate resolver '{wanted}' but its rule names no "
                "server: there is nothing to order a certificate for",
                (*router.path, "rule"),
                'match the names with HostSNI(`db.example.com`), or list them in tls { domains { main = "..." } }',
            )
            continue
        for names, path in _router_certificates(router, tls):
            if _wildcards_allowed(resolvers[wanted], names, path, report):
                _add(certificates[wanted], names)
    for ep_name, config in sorted(entrypoints.items()):
        yield from _entrypoint_plan(ep_name, config, routers, report)
    for name, acme in resolvers.items():
        yield ResolverPlan(name, acme, tuple(certificates[name]), tuple(sorted(served[name])))


def _entrypoint_plan(
    name: str, config: EntrypointConfig, routers: list[PlacedRouter], report: Report
) -> Iterator[ResolverPlan]:
    acme = entrypoint_resolver(name, config)
    if acme is None:
        return
    where: Path = ("entrypoints", name, "tls", "acme")
    if config.protocol != "http":
        report(f"entrypoint '{name}': acme = true is for HTTP entrypoints", where, None)
        return
    assert config.tls is not None
    group: list[tuple[str, ...]] = []
    if config.tls.acme_domains:
        path: Path = ("entrypoints", name, "tls", "acme_domains")
        names = tuple(d.lower().rstrip(".") for d in config.tls.acme_domains)
        if _wildcards_allowed(acme, names, path, report):
            group.append(names)
    else:
        for router in routers:
            if name in router.entrypoints and not router.tcp and not _has_resolver(router):
                for names, path in _router_certificates(router, None):
                    if _wildcards_allowed(acme, names, path, report):
                        _add(group, names)
    if not group:
        report(
            f"entrypoint '{name}': acme = true has no names to get a certificate for",
            where,
            'list them in acme_domains = ["example.com"], or route on it with Host(`example.com`)',
        )
    yield ResolverPlan(name + ENTRYPOINT_RESOLVER_SUFFIX, acme, tuple(group), (name,))


def _check_http_entrypoint(
    resolver: str, acme: AcmeConfig, entrypoints: Mapping[str, EntrypointConfig], report: Report
) -> None:
    challenge = acme.http_challenge
    if challenge is None:
        return
    where: Path = ("certificate_resolvers", resolver, "acme", "http_challenge", "entrypoint")
    config = entrypoints.get(challenge.entrypoint)
    if config is None:
        hint = did_you_mean(challenge.entrypoint, entrypoints) or _known(entrypoints)
        report(f"resolver '{resolver}': unknown entrypoint '{challenge.entrypoint}'", where, hint)
    elif config.protocol != "http" or config.tls is not None:
        report(
            f"resolver '{resolver}': HTTP-01 is answered on a plain HTTP entrypoint, and "
            f"'{challenge.entrypoint}' is not one",
            where,
            "name the entrypoint on port 80, or use tls_challenge {} for the TLS one",
        )


def _router_certificates(
    router: PlacedRouter, tls: RouterTls | None
) -> Iterator[tuple[tuple[str, ...], Path]]:
    """The certificates a router asks for, each with where its names are written."""
    if tls is not None and tls.domains:
        for index, domain in enumerate(tls.domains):
            names = (domain.main, *domain.sans)
            yield tuple(n.lower().rstrip(".") for n in names), (*router.path, "tls", "domains", index)
        return
    names = host_sni_names(router.config.rule) if router.tcp else host_names(router.config.rule)
    if names:
        yield names, (*router.path, "rule")


def host_names(rule: str) -> tuple[str, ...]:
    """The names of a rule's `Host()` matchers, in order (HostRegexp names none)."""
    return _matcher_names(rule, "http", "Host")


def host_sni_names(rule: str) -> tuple[str, ...]:
    """The names of a TCP rule's `HostSNI()` matchers, in order (HostSNI(`*`) and HostSNIRegexp
    name none: Traefik orders nothing for them either)."""
    return tuple(n for n in _matcher_names(rule, "tcp", "HostSNI") if n != "*")


def _matcher_names(rule: str, protocol: Literal["http", "tcp"], matcher_name: str) -> tuple[str, ...]:
    parsed = parse_rule(rule, protocol)
    if parsed.ast is None:
        return ()
    found: list[str] = []
    for matcher in iter_matchers(parsed.ast):
        if matcher.name == matcher_name:
            for arg in matcher.args:
                name = arg.lower().rstrip(".")
                if name not in found:
                    found.append(name)
    return tuple(found)


def _wildcards_allowed(acme: AcmeConfig, names: tuple[str, ...], path: Path, report: Report) -> bool:
    wild = [n for n in names if n.startswith("*.")]
    if wild and acme.dns_challenge is None:
        report(
            f"the wildcard name '{wild[0]}' can only be validated by DNS-01 ({acme.challenge} is configured)",
            path,
            "give the resolver dns_challenge { provider = ... }, or list the names one by one",
        )
        return False
    return True


def _check_certificates_exist(
    entrypoints: Mapping[str, EntrypointConfig], routers: list[PlacedRouter], report: Report
) -> None:
    for name, config in sorted(entrypoints.items()):
        tls = config.tls
        if tls is None:
            continue
        _check_acme_keys(name, tls, report)
        # Routers serve only on entrypoints of their protocol: HTTP and TCP ones alike.
        resolved = tls.acme or any(name in r.entrypoints and _has_resolver(r) for r in routers)
        if tls.fallback != "self-signed" and (tls.all_certificates() or not resolved):
            report(
                f"entrypoint '{name}': fallback applies to an entrypoint whose certificates all come from ACME",
                ("entrypoints", name, "tls", "fallback"),
                "remove it: names no certificate covers get the entrypoint's first certificate",
            )
        if resolved or tls.all_certificates():
            continue
        report(
            f"entrypoint '{name}': tls needs cert_file and key_file, a certificates list, acme = true, "
            "or routers with a cert_resolver",
            ("entrypoints", name, "tls"),
            None,
        )


# The A3S spelling's keys that only `acme = true` reads (entrypoint_resolver).
_ACME_KEYS = (
    "acme_email",
    "acme_domains",
    "acme_staging",
    "acme_storage_path",
    "acme_directory",
    "acme_ca_bundle",
)


def _check_acme_keys(name: str, tls: TlsConfig, report: Report) -> None:
    """No key of the A3S spelling is set to be ignored: each needs `acme = true`, and a directory
    given outright leaves `acme_staging` nothing to choose."""
    where: Path = ("entrypoints", name, "tls")
    if not tls.acme:
        for key in _ACME_KEYS:
            if key in tls.model_fields_set:
                report(
                    f"entrypoint '{name}': {key} applies with acme = true", (*where, key), "add acme = true"
                )
    elif tls.acme_staging and tls.acme_directory:
        report(
            f"entrypoint '{name}': acme_staging picks Let's Encrypt's staging server, and "
            "acme_directory names another one",
            (*where, "acme_staging"),
            "keep one of them",
        )


def _has_resolver(router: PlacedRouter) -> bool:
    tls = router.config.tls
    return isinstance(tls, RouterTls) and tls.cert_resolver is not None and not tls.passthrough


def _add(group: list[tuple[str, ...]], names: tuple[str, ...]) -> None:
    if names and names not in group:
        group.append(names)


def _known(names: Mapping[str, Any]) -> str:
    return "known: " + ", ".join(sorted(names)) if names else "declare it in certificate_resolvers"
