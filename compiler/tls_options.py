"""TLS options chosen by SNI (Traefik's `tls.options`): which handshake settings each name gets.

A router names a `tls_options` block (`routers "x" { tls { options = "modern" } }`); a client whose
SNI is one of the router's `Host()` names (a TCP router's `HostSNI()` names) is handshaken with
those options, on each TLS entrypoint the router serves. `tls_options "default"` applies to every
other handshake, as in Traefik. The runtime picks the context from the ClientHello read before the
handshake starts (runtime/tls_select.py), since OpenSSL has chosen the protocol version by the time
Python's SNI callback runs.

The same walk serves the compiler (`check_tls_options`, errors at file:line:col) and the runtime
(`tls_options_plan`). Errors: an unknown options name; a router with options whose rule names no
host (there is no SNI to choose them by: Traefik logs this and applies them to nothing); a router
with options and no TLS entrypoint; one host given two different options on one entrypoint
(Traefik logs it and falls back to `default` for that host, which would quietly drop, say, a
client-certificate requirement: here it is an error at the second router); an unknown cipher
suite or curve (or one this OpenSSL lacks); PEM text among client_auth's ca_files that holds no
certificate. Beside certificate resolvers, a host's options apply to its ACME certificate too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .acme import PlacedRouter, placed_routers
from .diagnostics import Diagnostics, did_you_mean
from .ir import IRGraph
from .schema import EntrypointConfig, RouterConfig, RouterTls, Settings, TcpRouterConfig, TlsOptionsConfig

if TYPE_CHECKING:  # merge.py reads the files: a running gateway does not load it
    from .merge import SpanMap

__all__ = [
    "CIPHER_SUITES",
    "DEFAULT",
    "EntrypointOptions",
    "check_tls_options",
    "is_pem_text",
    "tls_options_plan",
]

DEFAULT = "default"
Path = tuple[str | int, ...]
Report = Callable[[str, Path, str | None], None]

# The TLS 1.2 suites Go (and so Traefik) accepts, by IANA name -> OpenSSL's name.
CIPHER_SUITES: Mapping[str, str] = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
}
_TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")


@dataclass(frozen=True)
class EntrypointOptions:
    """The options of one TLS entrypoint: `default` for any name not in `by_host` (None: the
    entrypoint's own `tls` settings), and the options of each name a router chose them for."""

    default: TlsOptionsConfig | None
    by_host: tuple[tuple[str, str], ...]  # (lower-case host, options name), sorted
    options: tuple[tuple[str, TlsOptionsConfig], ...]  # each name used in by_host, sorted


def tls_options_plan(ir: IRGraph) -> dict[str, EntrypointOptions]:
    """The options of each TLS entrypoint, for the runtime (the IR is checked); empty when the
    configuration has no `tls_options`, so that a reload pays nothing for the feature unused."""
    settings = ir.settings if isinstance(ir.settings, Settings) else Settings()
    if not settings.tls_options:
        return {}
    entrypoints = {
        n.name: n.config for n in ir.by_kind("entrypoint") if isinstance(n.config, EntrypointConfig)
    }
    return _walk(settings, entrypoints, placed_routers(ir), lambda *_: None)


def check_tls_options(
    settings: Settings,
    entrypoints: Mapping[str, EntrypointConfig],
    routers: list[tuple[str, RouterConfig | TcpRouterConfig, list[str], Path]],
    spans: SpanMap,
    diags: Diagnostics,
) -> None:
    """Report every TLS options problem of the configuration at its line."""

    def report(message: str, path: Path, hint: str | None) -> None:
        diags.error(message, spans.find(path), hint=hint)

    for name, options in settings.tls_options.items():
        _check_suites(name, options, report)
        _check_curves(name, options, report)
        _check_client_cas(name, options, report)
    found = [PlacedRouter(n, c, tuple(eps), path) for n, c, eps, path in routers]
    _walk(settings, entrypoints, found, report)


def _check_suites(name: str, options: TlsOptionsConfig, report: Report) -> None:
    for i, suite in enumerate(options.cipher_suites or ()):
        if suite in CIPHER_SUITES:
            continue
        where: Path = ("tls_options", name, "cipher_suites", i)
        if suite in _TLS13_SUITES:
            hint = "TLS 1.3 suites are always on and not configurable (in Go and Traefik neither)"
        else:
            hint = (
                did_you_mean(suite, CIPHER_SUITES)
                or "use the IANA name, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
            )
        report(f"tls_options '{name}': unknown TLS 1.2 cipher suite '{suite}'", where, hint)


def is_pem_text(ca: str) -> bool:
    """Whether a `ca_files` item is the PEM text itself rather than a file's path (Traefik's
    FileOrContent; a path never holds a PEM header)."""
    return "-----BEGIN" in ca


def _check_client_cas(name: str, options: TlsOptionsConfig, report: Report) -> None:
    import ssl

    for i, ca in enumerate(options.client_auth.ca_files if options.client_auth else ()):
        if not is_pem_text(ca):
            continue  # a file: read when the listener is prepared, which names it if it fails
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cadata=ca)
        except (ssl.SSLError, ValueError) as exc:
            report(
                f"tls_options '{name}': client_auth ca_files[{i}] is PEM text with no valid CA "
                f"certificate ({str(exc).split(' (_ssl.c')[0]})",
                ("tls_options", name, "client_auth", "ca_files", i),
                "give whole -----BEGIN CERTIFICATE----- blocks, or a file's path",
            )


def _check_curves(name: str, options: TlsOptionsConfig, report: Report) -> None:
    curves = options.curve_preferences
    if curves is None:
        return
    # Imported here: ctypes and ssl only for a configuration that sets groups.
    from .tls_groups import CURVES, GroupsError, unavailable

    where: Path = ("tls_options", name, "curve_preferences")
    if not curves:
        report(f"tls_options '{name}': curve_preferences is empty", where, "name a group, e.g. X25519")
        return
    for i, curve in enumerate(curves):
        if curve not in CURVES:
            hint = did_you_mean(curve, CURVES) or "known: " + ", ".join(CURVES)
            report(f"tls_options '{name}': unknown curve '{curve}'", (*where, i), hint)
    try:
        missing = unavailable(curves)
    except GroupsError as exc:
        report(f"tls_options '{name}': curve_preferences cannot be applied: {exc}", where, None)
        return
    for curve in missing:
        report(
            f"tls_options '{name}': curve '{curve}' is not implemented by the OpenSSL this Python uses",
            (*where, curves.index(curve)),
            "X25519MLKEM768 needs OpenSSL 3.5 or later",
        )


def _walk(
    settings: Settings,
    entrypoints: Mapping[str, EntrypointConfig],
    routers: list[PlacedRouter],
    report: Report,
) -> dict[str, EntrypointOptions]:
    known = settings.tls_options
    chosen: dict[str, dict[str, tuple[str, PlacedRouter]]] = {}  # entrypoint -> host -> (options, router)
    for router, options in _routers_with_options(routers):
        where: Path = (*router.path, "tls", "options")
        if options not in known:
            hint = did_you_mean(options, known) or _known(known)
            report(f"{router.what} uses unknown TLS options '{options}'", where, hint)
            continue
        if isinstance(router.config.tls, RouterTls) and router.config.tls.passthrough:
            report(
                f"{router.what} forwards TLS (passthrough), so it has no handshake for TLS options '{options}'",
                where,
                "remove passthrough = true to terminate TLS here, or the options",
            )
            continue
        tls_entrypoints = [e for e in router.entrypoints if entrypoints[e].tls is not None]
        if not tls_entrypoints:
            report(
                f"{router.what} uses TLS options '{options}' but none of its entrypoints has a tls block",
                where,
                "add tls { ... } to the entrypoint the router serves on",
            )
            continue
        names = router.names()
        if not names:
            report(
                f"{router.what} uses TLS options '{options}' but its rule names no host: the "
                "handshake chooses options by SNI, and no SNI would choose these",
                (*router.path, "rule"),
                "match the names with Host(`example.com`) (a TCP router: HostSNI(`example.com`))",
            )
            continue
        for entrypoint in tls_entrypoints:
            hosts = chosen.setdefault(entrypoint, {})
            for host in names:
                _choose(hosts, host, options, router, entrypoint, where, report)
    default = known.get(DEFAULT)
    plan: dict[str, EntrypointOptions] = {}
    for name, config in entrypoints.items():
        if config.tls is None or config.protocol == "udp":
            continue
        by_host = {h: o for h, (o, _) in chosen.get(name, {}).items() if o != DEFAULT}
        used = sorted(set(by_host.values()))
        plan[name] = EntrypointOptions(
            default, tuple(sorted(by_host.items())), tuple((o, known[o]) for o in used)
        )
    return plan


def _choose(
    hosts: dict[str, tuple[str, PlacedRouter]],
    host: str,
    options: str,
    router: PlacedRouter,
    entrypoint: str,
    where: Path,
    report: Report,
) -> None:
    earlier = hosts.get(host)
    if earlier is None:
        hosts[host] = (options, router)
    elif earlier[0] != options:
        report(
            f"{router.what} gives host '{host}' TLS options '{options}' on entrypoint '{entrypoint}', "
            f"but {earlier[1].what} gives it '{earlier[0]}'",
            where,
            "a handshake has one set of options per SNI: name the same options on both routers",
        )


def _routers_with_options(routers: list[PlacedRouter]) -> Iterator[tuple[PlacedRouter, str]]:
    for router in routers:
        tls = router.config.tls
        if isinstance(tls, RouterTls) and tls.options is not None:
            yield router, tls.options


def _known(names: Mapping[str, object]) -> str:
    return "known: " + ", ".join(sorted(names)) if names else 'declare it: tls_options "name" { ... }'
