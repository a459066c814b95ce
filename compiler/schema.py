"""The top-level configuration schema: entrypoints, routers, services, middlewares, providers.

Key names follow the A3S Gateway documentation (so its snippets mean what they say) plus the keys
a production gateway needs (timeouts, limits, trusted proxies, passive health...). Every model is
frozen and rejects unknown keys. What varies by kind (a middleware's options, a balancer strategy,
an executor's block, a provider's block) is validated by the model that kind registered in the
stdlib registry, so this module never lists the kinds themselves.
"""

from __future__ import annotations

import importlib.util
import ipaddress
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from .model import HTTP_ONLY, SECRET_ENTRIES, TCP_ONLY, ConfigModel, only_for
from .resolvers import CertificateResolverConfig
from .units import Duration, Size

# --------------------------------------------------------------------------- entrypoints


class CertificateConfig(ConfigModel):
    cert_file: str
    key_file: str


class TlsConfig(ConfigModel):
    """TLS termination. Several certificates are chosen by SNI (the first is the default)."""

    cert_file: str | None = None
    key_file: str | None = None
    certificates: list[CertificateConfig] = []
    min_version: Literal["1.2", "1.3"] = "1.2"
    alpn: list[str] | None = None
    acme: bool = False
    acme_email: str | None = None
    acme_domains: list[str] = []
    acme_staging: bool = False
    acme_storage_path: str | None = None
    acme_directory: str | None = Field(
        default=None,
        description="With `acme = true`: the ACME server's directory URL (default: Let's Encrypt, "
        "or its staging server with `acme_staging`), e.g. a private CA or a local pebble.",
    )
    acme_ca_bundle: str | None = Field(
        default=None, description="With `acme = true`: a PEM file of CAs trusted for `acme_directory`."
    )
    fallback: Literal["self-signed", "refuse"] = Field(
        default="self-signed",
        description="Until an ACME certificate is issued for a name: serve a self-signed "
        "certificate, or refuse the handshake.",
    )

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls needs both cert_file and key_file")
        # No certificate at all is checked with the routers (compiler/acme.py): an entrypoint
        # whose routers use a certificate resolver needs none of its own.
        return self

    def all_certificates(self) -> list[CertificateConfig]:
        first = (
            [CertificateConfig(cert_file=self.cert_file, key_file=self.key_file)] if self.cert_file else []
        )
        return first + list(self.certificates)


# Entrypoint keys HTTP and TCP act on and UDP does not: a datagram has no head and no connection.
_STREAM_ONLY = only_for("http", "tcp")


class EntrypointTimeouts(ConfigModel):
    # Time allowed to receive a complete request head (slowloris protection); on TCP, the
    # ClientHello or first bytes a rule needs.
    read_header: Duration = Field(default=10.0, json_schema_extra=_STREAM_ONLY)
    # A keep-alive connection with no byte in either direction for this long is closed. (UDP
    # sessions end after udp_session_timeout_secs.)
    idle: Duration = Field(default=120.0, json_schema_extra=_STREAM_ONLY)
    # A proxied WebSocket with no frame in either direction for this long is closed (1001).
    websocket_idle: Duration = Field(default=300.0, json_schema_extra=HTTP_ONLY)
    # A request body still arriving this long after its head gets 408 and the connection (an
    # HTTP/2 stream: the stream) closes: a trickled upload cannot hold a connection forever.
    # 0 turns the deadline off. gRPC calls are exempt: their request body is a message stream.
    read_body: Duration = Field(
        default=60.0,
        description="a request body still arriving this long after its head gets 408 and a close; 0: off",
        json_schema_extra=HTTP_ONLY,
    )


class EntrypointLimits(ConfigModel):
    request_line: Size = 8192
    header_bytes: Size = 32768
    header_count: int = Field(default=100, ge=1)
    # Largest WebSocket message relayed (larger ones close the sender with 1009).
    websocket_message: Size = 16 * 1024 * 1024
    # HTTP/2 (RFC 9113 §6.5.2): concurrent streams per client connection.
    http2_max_streams: int = Field(default=100, ge=1)


class EncodedCharacters(ConfigModel):
    """Percent-encodings a request path may hold (Traefik's `encodedCharacters`); each one not
    allowed gets a 400. They are the characters a backend may read as structure once decoded."""

    allow_encoded_slash: bool = Field(default=False, description="%2F")
    allow_encoded_backslash: bool = Field(default=False, description="%5C, and a raw `\\` (sent on as %5C)")
    allow_encoded_null_character: bool = Field(default=False, description="%00")
    allow_encoded_semicolon: bool = Field(default=False, description="%3B")
    allow_encoded_percent: bool = Field(default=False, description="%25")
    allow_encoded_question_mark: bool = Field(default=False, description="%3F")
    allow_encoded_hash: bool = Field(default=False, description="%23")


class EntrypointHttp(ConfigModel):
    """How the request path is read before routing (docs/dataplane.md, "Request paths")."""

    encoded_characters: EncodedCharacters = EncodedCharacters()
    sanitize_path: bool = Field(
        default=True, description="remove `.` and `..` segments (RFC 3986 §5.2.4), merge duplicate slashes"
    )


def check_address(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f'address must be host:port, e.g. "0.0.0.0:8080", got {value!r}')
    if host.startswith("[") != host.endswith("]"):
        raise ValueError(f'invalid IPv6 address {value!r}: write it as "[::1]:8080"')
    return value


class AcceptProxyProtocol(ConfigModel):
    """TCP entrypoints: read a PROXY protocol header (v1 or v2) from these peers, so routing and
    IP filters see the client it names; any other peer that sends one is refused."""

    trusted_ips: list[str] = Field(description="Peers (IPs or CIDRs) whose PROXY header is believed.")

    @field_validator("trusted_ips")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        for value in values:
            ipaddress.ip_network(value, strict=False)
        return values


class EntrypointConfig(ConfigModel):
    address: str
    protocol: Literal["http", "tcp", "udp"] = "http"
    tls: TlsConfig | None = None
    # Declared after `tls` and `protocol`, which its validator reads.
    h2c: Literal["auto", "prior-knowledge", "off"] = Field(
        default="auto",
        description="Plain entrypoints: HTTP/1.1 and HTTP/2 by preface (auto), HTTP/2 only "
        "(prior-knowledge), or HTTP/1.1 only (off).",
    )
    max_connections: int | None = Field(default=None, ge=1)
    tcp_allowed_ips: list[str] = []
    udp_session_timeout_secs: int = Field(
        default=30, ge=1, description="UDP entrypoints: a session ends after this long without a datagram."
    )
    udp_max_sessions: int = Field(
        default=10000,
        ge=1,
        description="UDP entrypoints: the most sessions at once; past it the one idle longest is evicted.",
    )
    # Peers whose X-Forwarded-* headers are believed (IPs or CIDRs).
    trusted_proxies: list[str] = Field(default=[], json_schema_extra=HTTP_ONLY)
    # Request header names holding "_" (aliases of "-" names to CGI/WSGI backends): removed
    # (nginx's default), refused with 400, or forwarded (aliases of Content-Length and
    # Transfer-Encoding are removed even then).
    underscore_headers: Literal["delete", "reject", "keep"] = Field(
        default="delete",
        description="request header names holding `_`: removed, refused (400), or forwarded",
        json_schema_extra=HTTP_ONLY,
    )
    timeouts: EntrypointTimeouts = EntrypointTimeouts()
    limits: EntrypointLimits = Field(default=EntrypointLimits(), json_schema_extra=HTTP_ONLY)
    http: EntrypointHttp = Field(default=EntrypointHttp(), json_schema_extra=HTTP_ONLY)
    proxy_protocol: AcceptProxyProtocol | None = None

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return check_address(value)

    @field_validator("h2c")
    @classmethod
    def _h2c(cls, value: str, info: ValidationInfo) -> str:
        # Only a value other than the default is checked (pydantic skips defaults).
        if value != "auto" and info.data.get("tls") is not None:
            raise ValueError(
                "only for plain entrypoints: with TLS, ALPN chooses the protocol "
                '(tls { alpn = ["h2"] } offers HTTP/2 only, alpn = ["http/1.1"] HTTP/1.1 only)'
            )
        protocol = info.data.get("protocol", "http")
        if value != "auto" and protocol != "http":
            raise ValueError(f'only for HTTP entrypoints (this one has protocol "{protocol}")')
        return value

    @field_validator("tcp_allowed_ips", "trusted_proxies")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        for value in values:
            ipaddress.ip_network(value, strict=False)
        return values

    @field_validator("tcp_allowed_ips", "proxy_protocol")
    @classmethod
    def _tcp_only(cls, value: Any, info: ValidationInfo) -> Any:
        protocol = info.data.get("protocol", "http")
        if value and protocol != "tcp":
            hint = (
                " (an HTTP router can use an ip-allow middleware)"
                if info.field_name == "tcp_allowed_ips"
                else ""
            )
            raise ValueError(f'only for TCP entrypoints (this one has protocol "{protocol}"){hint}')
        return value

    @field_validator("udp_session_timeout_secs", "udp_max_sessions")
    @classmethod
    def _udp_only(cls, value: int, info: ValidationInfo) -> int:
        protocol = info.data.get("protocol", "http")
        default = cls.model_fields[str(info.field_name)].default
        if protocol != "udp" and value != default:  # only a value set in the file is validated
            raise ValueError(f'only for UDP entrypoints (this one has protocol "{protocol}")')
        return value

    @model_validator(mode="after")
    def _udp_keys(self) -> EntrypointConfig:
        if self.protocol == "udp":
            for key in ("tls", "max_connections"):
                if key in self.model_fields_set and getattr(self, key) is not None:
                    raise ValueError(
                        f"'{key}' does not apply to UDP entrypoints (udp_max_sessions caps sessions)"
                        if key == "max_connections"
                        else "'tls' does not apply to UDP entrypoints (DTLS is not offered)"
                    )
        return self

    @property
    def host(self) -> str:
        return self.address.rpartition(":")[0].strip("[]") or "0.0.0.0"

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])


# --------------------------------------------------------------------------- routers


class TlsDomain(ConfigModel):
    """One certificate a router asks its resolver for (Traefik's `tls.domains`)."""

    main: str = Field(description='The first name, e.g. "example.com" or "*.example.com" (DNS-01 only).')
    sans: list[str] = Field(default=[], description="More names on the same certificate.")


class RouterTls(ConfigModel):
    passthrough: bool = False
    options: str | None = Field(
        default=None,
        description="The `tls_options` block the handshake uses when the client's SNI is one of this "
        "router's Host() (a TCP router: HostSNI()) names (Traefik's `tls.options`).",
    )
    cert_resolver: str | None = Field(
        default=None,
        description="The certificate resolver that gets this router's names (a TCP router: it terminates TLS).",
    )
    domains: list[TlsDomain] = Field(
        default=[],
        description="With cert_resolver: the certificates to get (default: one for the rule's Host() "
        "names, a TCP router's HostSNI() names).",
    )


# A router's lists default through a factory: a `[]` default is deep-copied by pydantic on each
# validation, a Python call per router and list (10,000 routers: 20,000 of them).
class RouterConfig(ConfigModel):
    rule: str
    service: str
    # Empty: every entrypoint of the router's protocol.
    entrypoints: list[str] = Field(default_factory=list)
    middlewares: list[str] = Field(default_factory=list)
    priority: int | None = None
    tls: RouterTls | bool | None = None


class TcpRouterConfig(ConfigModel):
    rule: str = "HostSNI(`*`)"
    service: str
    entrypoints: list[str] = Field(default_factory=list)
    middlewares: list[str] = Field(default_factory=list)
    priority: int | None = None
    tls: RouterTls | None = None


class UdpRouterConfig(ConfigModel):
    service: str
    entrypoints: list[str] = Field(default_factory=list)


# --------------------------------------------------------------------------- services


class ServerConfig(ConfigModel):
    """A backend: `url` for HTTP services, `address` (host:port) for TCP/UDP services."""

    url: str | None = None
    address: str | None = None
    weight: int = Field(default=1, ge=0)

    @model_validator(mode="after")
    def _one_target(self) -> ServerConfig:
        if (self.url is None) == (self.address is None):
            raise ValueError("a server needs exactly one of url (HTTP) or address (TCP/UDP)")
        return self


class HealthCheckConfig(ConfigModel):
    # The health kind (stdlib/health/) that runs this block.
    kind: ClassVar[str] = "http"

    path: str = Field(default="/health", json_schema_extra=HTTP_ONLY)
    method: str = Field(default="GET", json_schema_extra=HTTP_ONLY)
    interval: Duration = 10.0
    timeout: Duration = 5.0
    healthy_threshold: int = Field(default=1, ge=1)
    unhealthy_threshold: int = Field(default=3, ge=1)
    # Expected status: a code ("200") or range ("200-399").
    status: str = Field(default="200-399", json_schema_extra=HTTP_ONLY)
    hostname: str | None = Field(default=None, json_schema_extra=HTTP_ONLY)
    headers: dict[str, str] = Field(default={}, json_schema_extra={**SECRET_ENTRIES, **HTTP_ONLY})
    port: int | None = Field(default=None, ge=1, le=65535)
    send: str | None = Field(
        default=None,
        description="TCP services: these bytes (UTF-8) are written once connected.",
        json_schema_extra=TCP_ONLY,
    )
    expect: str | None = Field(
        default=None,
        description="TCP services: the probe is good once these bytes have been read back.",
        json_schema_extra=TCP_ONLY,
    )

    @field_validator("status")
    @classmethod
    def _status(cls, value: str) -> str:
        lo, _, hi = value.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()) or not 100 <= int(lo) <= int(hi or lo) <= 599:
            raise ValueError(f'status must be a code or a range like "200-399", got {value!r}')
        return value

    def status_range(self) -> tuple[int, int]:
        lo, _, hi = self.status.partition("-")
        return int(lo), int(hi or lo)


class AgentHealthConfig(ConfigModel):
    """`agent_health`: model-server readiness (Loading, Ready, Busy, Error, Unreachable); see
    stdlib/health/agent.py."""

    kind: ClassVar[str] = "agent"

    server: Literal["vllm", "llama.cpp", "tgi", "json"] = Field(
        description="What the backends are: which endpoints are read and how their answers are understood."
    )
    path: str = Field(default="/health", description="`json`: the path of the `{status}` document.")
    model: str | None = Field(
        default=None,
        description="vLLM and TGI: the model that must be served (`/v1/models`, `/info`); unset: any.",
    )
    busy_queue: int | None = Field(
        default=None,
        ge=1,
        description="Busy when this many requests wait in the server's queue (its /metrics gauge, or "
        "the JSON document's `queue`); unset: Busy only when the server says so.",
    )
    interval: Duration = 5.0
    timeout: Duration = 2.0
    healthy_threshold: int = Field(default=1, ge=1)
    unhealthy_threshold: int = Field(default=2, ge=1)
    hostname: str | None = None
    headers: dict[str, str] = Field(default={}, json_schema_extra=SECRET_ENTRIES)
    port: int | None = Field(default=None, ge=1, le=65535)


class PassiveHealthConfig(ConfigModel):
    """Consecutive failures (connect errors, 5xx, timeouts) within `window` evict a backend."""

    max_failures: int = Field(default=5, ge=1)
    window: Duration = 10.0
    cooldown: Duration = 30.0
    failure_statuses: str = Field(default="500-599", json_schema_extra=HTTP_ONLY)


class StickyConfig(ConfigModel):
    cookie_name: str = Field(default="a3s_sticky", alias="cookie")
    ttl: Duration | None = None
    secure: bool = False
    http_only: bool = True
    same_site: Literal["lax", "strict", "none"] = "lax"
    max_entries: int = Field(default=100_000, ge=1)


class LoadBalancerConfig(ConfigModel):
    strategy: str = "round-robin"
    servers: list[ServerConfig] = []
    health_check: HealthCheckConfig | None = None
    agent_health: AgentHealthConfig | None = Field(default=None, json_schema_extra=HTTP_ONLY)
    passive_health: PassiveHealthConfig | None = None
    sticky: StickyConfig | None = Field(default=None, json_schema_extra=HTTP_ONLY)
    pass_host_header: bool = Field(default=True, json_schema_extra=HTTP_ONLY)
    # The strategy's own block (e.g. `ewma { decay = "5s" }`), validated by the balancer kind.
    strategy_options: dict[str, Any] = Field(default={}, json_schema_extra=SECRET_ENTRIES)
    # Keep-alive pool per backend.
    max_idle_connections: int = Field(default=64, ge=0, json_schema_extra=HTTP_ONLY)
    max_connections: int | None = Field(default=None, ge=1, json_schema_extra=HTTP_ONLY)

    @model_validator(mode="after")
    def _one_active_check(self) -> LoadBalancerConfig:
        if self.health_check is not None and self.agent_health is not None:
            raise ValueError(
                "health_check and agent_health are both active checks: keep one "
                "(agent_health reads a model server's readiness and replaces health_check)"
            )
        return self

    def active_check(self) -> HealthCheckConfig | AgentHealthConfig | None:
        """The active health block, whichever kind it is."""
        return self.agent_health or self.health_check


class MirrorConfig(ConfigModel):
    service: str
    percentage: float = Field(default=100, ge=0, le=100)
    max_in_flight: int = Field(default=100, ge=1)
    # Request bodies up to this size are teed to the shadow; larger ones are not mirrored.
    max_body: Size = 1024 * 1024


class FailoverConfig(ConfigModel):
    service: str


class ServiceTimeouts(ConfigModel):
    connect: Duration = 5.0
    # Slow models take minutes to answer; nginx's 60 s default is the bug we do not ship.
    response_header: Duration = Field(default=300.0, json_schema_extra=HTTP_ONLY)
    # No byte in either direction for this long. (A TCP connection's idle cut is its
    # entrypoint's timeouts.idle.)
    idle: Duration = Field(default=300.0, json_schema_extra=HTTP_ONLY)
    # Optional cap on the whole exchange; off by default so long streams are never cut.
    total: Duration | None = Field(default=None, json_schema_extra=HTTP_ONLY)
    termination_delay: Duration = Field(
        default=0.1,
        description="TCP services: once one side has half-closed, how long the other direction may "
        "still carry bytes before the connection is closed (Traefik's terminationDelay).",
        json_schema_extra=TCP_ONLY,
    )


class ScalingConfig(ConfigModel):
    """Knative-style autoscaling; defaults are Knative's. See docs/scaling.md."""

    min_replicas: int = Field(default=0, ge=0)
    max_replicas: int = Field(default=10, ge=1)
    initial_replicas: int | None = Field(default=None, ge=0)
    container_concurrency: int = Field(default=0, ge=0)
    target_utilization: float = Field(default=0.7, gt=0, le=1)
    buffer_enabled: bool = True
    buffer_timeout: Duration = Field(default=60.0, alias="buffer_timeout_secs")
    buffer_max_requests: int = Field(default=100, ge=1, alias="buffer_size")
    buffer_max_bytes: Size = 64 * 1024 * 1024
    buffer_keepalive: Duration | None = None
    executor: str = "static"
    # Knative accepts 6s..1h for the stable window.
    stable_window: Duration = Field(default=60.0, ge=6.0, le=3600.0)
    panic_window_percentage: float = Field(default=10.0, gt=0, le=100)
    panic_threshold_percentage: float = Field(default=200.0, gt=100)
    scale_to_zero_grace: Duration = 30.0
    scale_down_delay: Duration = Field(default=0.0, alias="scale_down_delay_secs")
    max_scale_up_rate: float = Field(default=1000.0, gt=1)
    max_scale_down_rate: float = Field(default=2.0, gt=1)
    tick_interval: Duration = Field(default=2.0, gt=0)
    # The executor's own block (e.g. `process { command = ... }`), validated by the executor kind.
    executor_options: dict[str, Any] = Field(default={}, json_schema_extra=SECRET_ENTRIES)

    @model_validator(mode="after")
    def _bounds(self) -> ScalingConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})")
        return self


class RevisionConfig(ConfigModel):
    name: str
    traffic_percent: float = Field(default=100, ge=0, le=100)
    servers: list[ServerConfig] = []
    strategy: str | None = Field(
        default=None,
        description="A load-balancing strategy of its own, with default options (unset: the service's).",
    )
    # Tag routing: a request whose revision header or cookie names this tag goes here.
    tag: str | None = None
    # This revision's own autoscaling (Knative: each revision scales on its own). The lowering
    # merges the service's `scaling` block with the revision's `scaling = { ... }` object, key by
    # key; None when the revision has no such object (it is served from its servers).
    scaling: ScalingConfig | None = Field(
        default=None,
        description="Scale this revision on its own: the service's `scaling` block, overridden key by key "
        "(`{}` takes it as it is).",
    )


class RolloutConfig(ConfigModel):
    from_: str = Field(alias="from")
    to: str
    step_percent: float = Field(default=10, gt=0, le=100)
    step_interval_secs: float = Field(default=60, gt=0)
    error_rate_threshold: float = Field(default=0.05, ge=0, le=1)
    latency_threshold_ms: float = Field(default=5000, gt=0)
    # A step with fewer requests to `to` than this is extended rather than judged on noise.
    min_requests: int = Field(default=20, ge=0)


class SendProxyProtocol(ConfigModel):
    """TCP services: start every backend connection with a PROXY protocol header naming the client."""

    version: Literal[1, 2] = 2


class FtpPassive(ConfigModel):
    """TCP services in front of an FTP server: passive mode through the gateway.

    The server's `227`/`229` replies on the control connection are rewritten to name the gateway
    (`passive_address`, by default the address the client connected to) and a port of
    `passive_ports`, where the gateway takes the client's data connection and relays it to the
    port the server named, on the server's own address."""

    passive_ports: str = Field(description='The gateway\'s passive port range, "first-last".')
    passive_address: str | None = Field(
        default=None, description="The IPv4 address 227 replies name (default: the one the client reached)."
    )

    @field_validator("passive_ports")
    @classmethod
    def _range(cls, value: str) -> str:
        first, _, last = value.partition("-")
        if not (first.strip().isdigit() and last.strip().isdigit()):
            raise ValueError(f'passive_ports is a range "first-last", such as "30000-30099", not {value!r}')
        if not 1024 <= int(first) <= int(last) <= 65535:
            raise ValueError(f"passive_ports {value!r}: ports from 1024 to 65535, first <= last")
        return value

    @field_validator("passive_address")
    @classmethod
    def _ipv4(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ipaddress.IPv4Address(value)
            except ValueError:
                raise ValueError(
                    f"passive_address is an IPv4 address (227 replies carry no other), not {value!r}"
                ) from None
        return value


class ServiceConfig(ConfigModel):
    load_balancer: LoadBalancerConfig | None = None
    mirror: MirrorConfig | None = Field(default=None, json_schema_extra=HTTP_ONLY)
    failover: FailoverConfig | None = None
    scaling: ScalingConfig | None = Field(default=None, json_schema_extra=HTTP_ONLY)
    revisions: list[RevisionConfig] = Field(default=[], json_schema_extra=HTTP_ONLY)
    rollout: RolloutConfig | None = Field(default=None, json_schema_extra=HTTP_ONLY)
    timeouts: ServiceTimeouts = ServiceTimeouts()
    # Tag routing (revisions): the header and cookie that pin a request to a revision by name or tag.
    revision_header: str = Field(default="x-a3s-revision", json_schema_extra=HTTP_ONLY)
    revision_cookie: str | None = Field(default=None, json_schema_extra=HTTP_ONLY)
    proxy_protocol: SendProxyProtocol | None = Field(default=None, json_schema_extra=TCP_ONLY)
    ftp: FtpPassive | None = Field(default=None, json_schema_extra=TCP_ONLY)
    # A service of a registered kind (`model_router { ... }`) instead of a pool of servers: the
    # lowering moves the kind's block here, validated by the kind's own model (stdlib/services/).
    kind: str | None = Field(default=None, description="Set by a kind's block, e.g. `model_router { ... }`.")
    kind_options: dict[str, Any] = Field(default={}, json_schema_extra=SECRET_ENTRIES)


# --------------------------------------------------------------------------- middlewares & settings


class ProxyConfig(ConfigModel):
    """What the proxy node of a service needs: upstream timeouts and Host handling."""

    pass_host_header: bool = True
    timeouts: ServiceTimeouts = ServiceTimeouts()
    max_idle_connections: int = 64
    max_connections: int | None = None


# --------------------------------------------------------------------------- providers
# Providers feed configuration from outside the files. `file` is served by `run --watch` / the
# file provider; the other providers are kinds (stdlib/providers/: dns, discovery, kubernetes,
# docker, etcd, ...) whose blocks their own models validate.


class FileProviderConfig(ConfigModel):
    watch: bool = True
    directory: str | None = None
    filename: str | None = None


class ProvidersConfig(ConfigModel):
    throttle: Duration = Field(
        default=2.0,
        description="Changes from the providers within this time after a reload are coalesced "
        "into the next one (Traefik's providersThrottleDuration).",
    )
    max_routers: int = Field(default=10_000, ge=1, description="The most routers one provider may give.")
    file: FileProviderConfig | None = None
    # The blocks of registered provider kinds (`etcd { ... }`, stdlib/providers/), each validated
    # by its kind's model: the lowering moves them here, keyed by kind name.
    kinds: dict[str, Any] = Field(
        default={}, description="Set by a provider kind's block, e.g. `etcd { ... }`."
    )


# --------------------------------------------------------------------------- internal services


class InternalServiceConfig(ConfigModel):
    """A built-in service (`api@internal`, `ping@internal`): the gateway answers itself.

    Nothing to configure: the node exists so that routers, middlewares, `graph --dot` and
    `route` treat it like any other service (docs/observability.md)."""

    internal: Literal["api", "ping", "dashboard", "prometheus", "acme-http"]


class ApiConfig(ConfigModel):
    """The `api { }` block: the admin JSON API (and `/ping`) on an entrypoint of its own.

    Nothing admin is served anywhere unless this block (or a router naming `api@internal`) says so."""

    address: str = Field(description='Where the admin entrypoint listens, e.g. "127.0.0.1:9090".')
    dashboard: bool = Field(
        default=False,
        description="Also serve the web dashboard (`dashboard@internal`) at `/dashboard/` here.",
    )
    middlewares: list[str] = Field(
        default=[], description="Applied to every internal route on this address (e.g. basic-auth)."
    )
    ping: bool = Field(default=True, description="Also serve `GET /ping` (`ping@internal`) here.")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return check_address(value)


class AccessLogFilters(ConfigModel):
    """Which requests the access log keeps (Traefik's `accessLog.filters`): a request is kept when
    any filter that is set matches it; with no filter set, every request is kept."""

    status_codes: list[str] = Field(
        default=[], description='Status codes or ranges to keep, e.g. `["400-599", "302"]`.'
    )
    min_duration: Duration = Field(default=0.0, description="Keep requests that took at least this long.")
    retry_attempts: bool = Field(default=False, description="Keep requests that were retried.")

    @field_validator("status_codes")
    @classmethod
    def _codes(cls, value: list[str]) -> list[str]:
        for item in value:
            low, _, high = item.partition("-")
            if not (low.strip().isdigit() and (not high or high.strip().isdigit())):
                raise ValueError(f'{item!r} is not a status code or a range such as "400-599"')
            if high and int(high) < int(low):
                raise ValueError(f"{item!r}: the range is empty")
        return value


HeaderMode = Literal["keep", "drop", "redact"]


class AccessLogHeaders(ConfigModel):
    """Which headers the access log writes (Traefik's `accessLog.fields.headers`): none by default.

    A kept header is written as `request_<Name>` (as the client sent it) and `downstream_<Name>`
    (as the client received it), its values joined with `,`; a redacted one as `REDACTED`.
    Credentials (`Authorization`, `Cookie`, `Set-Cookie`, `Proxy-Authorization`, `X-Api-Key` and
    any name that says it holds a key, token, secret or password) are always redacted, even when
    a mode says `keep`."""

    default_mode: HeaderMode = Field(
        default="drop", description="`keep`, `drop` or `redact` for the headers `names` does not list."
    )
    names: dict[str, HeaderMode] = Field(
        default={}, description='A mode per header name (any case), e.g. `{ "User-Agent" = "keep" }`.'
    )


class AccessLogConfig(ConfigModel):
    """The `access_log { }` block: one line per request, written off the event loop."""

    path: str = Field(
        default="-", description='Where lines go: "-" is stdout, else a file opened for append.'
    )
    format: Literal["json", "common"] = Field(
        default="json", description="`json` (one object a line) or `common` (Common Log Format plus extras)."
    )
    filters: AccessLogFilters = Field(default_factory=AccessLogFilters)
    headers: AccessLogHeaders = Field(default_factory=AccessLogHeaders)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value:
            raise ValueError('give a file path, or "-" for stdout')
        return value


class PrometheusConfig(ConfigModel):
    """Prometheus metrics (Traefik's `metrics.prometheus`): the series are listed in
    docs/observability.md. They are served by `prometheus@internal`: at `/metrics` on the `api`
    block's address, unless `manual_routing`, and by `GET /api/gateway/metrics`."""

    buckets: list[float] = Field(
        default=[0.1, 0.3, 1.2, 5.0], description="Upper bounds (seconds) of the latency histograms' buckets."
    )
    add_entrypoints_labels: bool = Field(default=True, description="Record the `entrypoint_*` series.")
    add_routers_labels: bool = Field(default=False, description="Record the `router_*` series.")
    add_services_labels: bool = Field(default=True, description="Record the `service_*` series.")
    manual_routing: bool = Field(
        default=False,
        description="Do not add the `/metrics` router to the api entrypoint: route `prometheus@internal` yourself.",
    )

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, value: list[float]) -> list[float]:
        if not value:
            raise ValueError("give at least one bucket bound")
        if any(b <= 0 for b in value) or sorted(set(value)) != value:
            raise ValueError("bucket bounds must be positive and strictly increasing")
        return value


class MetricsConfig(ConfigModel):
    """The `metrics { }` block. Without it nothing is measured (the request path pays nothing)."""

    prometheus: PrometheusConfig = Field(default_factory=PrometheusConfig)


# The packages `pip install a3s-gateway[otel]` brings, which span export imports.
OTEL_MODULES = ("opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http.trace_exporter")


def otel_installed() -> bool:
    """Whether the `otel` extra is installed (found, not imported: compiling stays cheap)."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in OTEL_MODULES)
    except (ImportError, ValueError):  # a parent package missing, or blocked in sys.modules
        return False


class OtlpConfig(ConfigModel):
    """`tracing { otlp { } }`: export spans over OTLP/HTTP (protobuf), as Traefik's `tracing.otlp.http`."""

    endpoint: str = Field(
        default="http://127.0.0.1:4318/v1/traces",
        description="The collector's OTLP/HTTP traces URL (its `/v1/traces` path included).",
    )
    headers: dict[str, str] = Field(
        default={},
        description="Sent with every export (e.g. a collector's API key; redacted in the admin API).",
        json_schema_extra=SECRET_ENTRIES,
    )
    timeout: Duration = Field(default=10.0, description="How long one export may take.")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(
                "the OTLP endpoint is an http:// or https:// URL, e.g. http://collector:4318/v1/traces"
            )
        return value


class TracingConfig(ConfigModel):
    """The `tracing { }` block: trace context propagation, sampling and span export.

    Propagation alone needs nothing beyond the gateway; `otlp { }` exports spans and needs the
    `otel` extra (`pip install a3s-gateway[otel]`)."""

    propagation: list[Literal["w3c", "b3", "b3multi"]] = Field(
        default=["w3c"],
        min_length=1,
        description="Formats read from requests (first valid wins) and written upstream: "
        "`w3c` (traceparent, tracestate), `b3` (single header), `b3multi` (X-B3-*).",
    )
    sample_rate: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="The share of new traces sampled; a request's parent decision is followed when it has one.",
    )
    service_name: str = Field(default="a3s-gateway", min_length=1, description="The spans' `service.name`.")
    resource_attributes: dict[str, str] = Field(
        default={}, description="Added to every span's resource (e.g. `deployment.environment`)."
    )
    otlp: OtlpConfig | None = Field(default=None, description="Export spans over OTLP/HTTP.")

    @field_validator("otlp")
    @classmethod
    def _extra(cls, value: OtlpConfig | None) -> OtlpConfig | None:
        if value is not None and not otel_installed():
            raise ValueError(
                "span export needs the `otel` extra: pip install 'a3s-gateway[otel]' "
                "(propagation alone works without it)"
            )
        return value


# --------------------------------------------------------------------------- TLS options

ClientAuthType = Literal["NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"]


class ClientAuthConfig(ConfigModel):
    """Client certificates (mutual TLS). The types are Traefik's (Go's) names; Go's
    RequestClientCert and RequireAnyClientCert (a certificate asked for but not verified) have no
    equivalent in Python's ssl module, which verifies whatever it asks for."""

    ca_files: list[str] = Field(
        default=[],
        description="The CAs client certificates must chain to: each a PEM file, or the PEM text "
        "itself (Traefik's caFiles, a file or its content).",
    )
    client_auth_type: ClientAuthType | None = Field(
        default=None,
        description="Default: RequireAndVerifyClientCert with ca_files, NoClientCert without (Traefik's).",
    )

    @model_validator(mode="after")
    def _needs_cas(self) -> ClientAuthConfig:
        if self.client_auth_type not in (None, "NoClientCert") and not self.ca_files:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs ca_files")
        return self

    def verify(self) -> ClientAuthType:
        if self.client_auth_type is not None:
            return self.client_auth_type
        return "RequireAndVerifyClientCert" if self.ca_files else "NoClientCert"


class TlsOptionsConfig(ConfigModel):
    """Handshake settings chosen by SNI (Traefik's TLS options); a key left out keeps the
    entrypoint's `tls` setting. `tls_options "default"` applies to every handshake whose SNI names
    no router with options of its own."""

    min_version: Literal["1.2", "1.3"] | None = None
    max_version: Literal["1.2", "1.3"] | None = None
    cipher_suites: list[str] | None = Field(
        default=None,
        description="TLS 1.2 cipher suites by their IANA (Go, Traefik) names, e.g. "
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256. TLS 1.3 suites are not configurable (nor in Go).",
    )
    curve_preferences: list[str] | None = Field(
        default=None,
        description="The key-exchange groups allowed, in the server's order, by Traefik's (Go's) names: "
        "CurveP256, CurveP384, CurveP521, X25519 (and X25519MLKEM768 with OpenSSL 3.5 or later).",
    )
    client_auth: ClientAuthConfig | None = None
    sni_strict: bool = Field(
        default=False,
        description="Refuse a handshake without SNI, or whose SNI no certificate of the entrypoint names.",
    )
    alpn_protocols: list[str] | None = Field(
        default=None, description="The ALPN protocols offered (default: the entrypoint's)."
    )

    @model_validator(mode="after")
    def _versions(self) -> TlsOptionsConfig:
        if self.min_version == "1.3" and self.max_version == "1.2":
            raise ValueError("min_version 1.3 is above max_version 1.2")
        return self


class Settings(ConfigModel):
    """Gateway-wide settings: top-level attributes of the configuration."""

    drain_timeout: Duration = Field(default=30.0, alias="shutdown_timeout_secs")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool | AccessLogConfig = Field(
        default=False, description="`true` for JSON lines on stdout, or an `access_log { }` block."
    )
    providers: ProvidersConfig | None = None
    certificate_resolvers: dict[str, CertificateResolverConfig] = Field(
        default={}, description='Named ACME resolvers: `certificate_resolvers "le" { acme { ... } }`.'
    )
    tls_options: dict[str, TlsOptionsConfig] = Field(
        default={},
        description='Named TLS options that routers choose by SNI: `tls_options "modern" { min_version = "1.3" }`.',
    )
    metrics: MetricsConfig | None = Field(default=None, description="A `metrics { prometheus { } }` block.")
    tracing: TracingConfig | None = Field(
        default=None, description="Trace context propagation and span export (`tracing { }`)."
    )
