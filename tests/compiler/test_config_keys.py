"""What compiles runs: every configuration key is read by the runtime or refused as not available yet.

The schema is walked model by model (compiler/keys.py: nobody has to remember to), and each key
must be in RUNTIME_READS (with where it is read) or covered by `compiler/unavailable.py`, whose
keys make `compile --check` fail at their line. A new key that nothing reads fails this test.

Key paths are written as in the configuration: `*` for a block label, list elements implicit
(`services.*.load_balancer.servers.url`), aliases as users write them. When you add a key, add it
here with the module that acts on it; when a feature lands, move its keys from UNAVAILABLE here.
"""

from __future__ import annotations

import io
import re
import tokenize
from functools import cache
from pathlib import Path

from a3s_gateway.compiler import compile_config
from a3s_gateway.compiler import schema as S
from a3s_gateway.compiler.keys import TOP_LEVEL, blocks
from a3s_gateway.compiler.unavailable import UNAVAILABLE, is_unavailable

_GW = "runtime/gateway.py"
_EP = "runtime/ingress.py (ConnectionSettings), runtime/entrypoints.py"
_LB = "runtime/service.py, runtime/l4/service.py"
_TCP_EP = "runtime/l4/server.py, runtime/l4/connection.py"
_PATHS = "compiler/request_target.py (PathPolicy, applied by the ingress and the route dry run)"
_SCALER = "stdlib/scalers/kpa.py"
_SCALING = {
    "min_replicas": _SCALER,
    "max_replicas": _SCALER,
    "initial_replicas": _SCALER,
    "container_concurrency": _SCALER,
    "target_utilization": _SCALER,
    "buffer_enabled": "stdlib/scalers/_serve.py",
    "buffer_timeout_secs": "stdlib/scalers/_scaler.py (the buffer's timeout)",
    "buffer_size": "stdlib/scalers/_scaler.py (the buffer's bound)",
    "buffer_max_bytes": "stdlib/scalers/_scaler.py",
    "buffer_keepalive": "stdlib/scalers/_serve.py",
    "executor": "stdlib/scalers/_scaler.py (the executor kind)",
    "stable_window": _SCALER,
    "panic_window_percentage": _SCALER,
    "panic_threshold_percentage": _SCALER,
    "scale_to_zero_grace": _SCALER,
    "scale_down_delay_secs": _SCALER,
    "max_scale_up_rate": _SCALER,
    "max_scale_down_rate": _SCALER,
    "tick_interval": _SCALER,
    "executor_options": "stdlib/scalers/_scaler.py (validated by the executor kind: stdlib/executors/)",
}
_SERVERS = {"url": _LB, "weight": "stdlib/balancers/"}

# key path -> where the runtime (or, for file loading, the compiler's loader) acts on it.
RUNTIME_READS: dict[str, str] = {
    "shutdown_timeout_secs": _GW,
    "log_level": _GW,
    "access_log": "runtime/observe/access_log.py (built by runtime/gateway.py)",
    "access_log.path": "runtime/observe/access_log.py (AccessLogWriter)",
    "access_log.format": "runtime/observe/access_log.py (format_common / format_json)",
    "access_log.filters": "runtime/observe/access_log.py (AccessFilter)",
    "access_log.filters.status_codes": "runtime/observe/access_log.py (AccessFilter)",
    "access_log.filters.min_duration": "runtime/observe/access_log.py (AccessFilter)",
    "access_log.filters.retry_attempts": "runtime/observe/access_log.py (AccessFilter)",
    "access_log.headers": "runtime/observe/access_log.py (HeaderFields, header_fields.py)",
    "access_log.headers.default_mode": "runtime/observe/header_fields.py (HeaderFields)",
    "access_log.headers.names": "runtime/observe/header_fields.py (HeaderFields)",
    "tracing": "runtime/observe/tracing.py (prepare_tracing, built by runtime/gateway.py)",
    "tracing.propagation": "runtime/observe/tracing.py (Propagation: runtime/protocols/trace_context.py)",
    "tracing.sample_rate": "runtime/observe/tracing.py (Tracing.start: decide)",
    "tracing.service_name": "runtime/observe/otel.py (OtlpRecorder: the resource)",
    "tracing.resource_attributes": "runtime/observe/otel.py (OtlpRecorder: the resource)",
    "tracing.otlp": "runtime/observe/otel.py (OtlpRecorder)",
    "tracing.otlp.endpoint": "runtime/observe/otel.py (OTLPSpanExporter)",
    "tracing.otlp.headers": "runtime/observe/otel.py (OTLPSpanExporter)",
    "tracing.otlp.timeout": "runtime/observe/otel.py (OTLPSpanExporter)",
    "metrics": "runtime/observe/metrics.py (prepare_metrics, built by runtime/gateway.py)",
    "metrics.prometheus": "runtime/observe/metrics.py (GatewayMetrics)",
    "metrics.prometheus.buckets": "runtime/observe/metrics.py (the histograms' buckets)",
    "metrics.prometheus.add_entrypoints_labels": "runtime/graph.py (RequestMeters)",
    "metrics.prometheus.add_routers_labels": "runtime/graph.py (RequestMeters)",
    "metrics.prometheus.add_services_labels": "runtime/graph.py (RequestMeters)",
    "metrics.prometheus.manual_routing": "compiler/internal.py (no /metrics router on the api entrypoint)",
    "providers": "compiler/file_provider.py (loaded by compiler/merge.py)",
    "providers.file": "compiler/file_provider.py (loaded by compiler/merge.py)",
    "providers.file.directory": "compiler/file_provider.py (loaded and watched)",
    "providers.file.filename": "compiler/file_provider.py (loaded and watched)",
    "providers.file.watch": "compiler/file_provider.py (watched_paths, for runtime/watch.py)",
    "providers.throttle": "runtime/providers.py (ProviderSet: the apply loop's pause)",
    "providers.max_routers": "compiler/fragment.py (merge_fragments)",
    "providers.kinds": "runtime/providers.py (ProviderSet.reconcile: the provider kinds run)",
    "entrypoints.*.address": _EP,
    "entrypoints.*.tls": "runtime/entrypoints.py (runtime/tls.py: HTTPS, and TLS termination by TCP routers)",
    "entrypoints.*.tls.cert_file": "runtime/tls.py",
    "entrypoints.*.tls.key_file": "runtime/tls.py",
    "entrypoints.*.tls.certificates": "runtime/tls.py",
    "entrypoints.*.tls.certificates.cert_file": "runtime/tls.py",
    "entrypoints.*.tls.certificates.key_file": "runtime/tls.py",
    "entrypoints.*.tls.min_version": "runtime/tls.py",
    "entrypoints.*.tls.alpn": "runtime/tls.py",
    "entrypoints.*.tls.fallback": "runtime/tls.py",
    "entrypoints.*.tls.acme": "compiler/acme.py (the plan runtime/acme/manager.py runs)",
    "entrypoints.*.tls.acme_email": "compiler/acme.py (the plan runtime/acme/manager.py runs)",
    "entrypoints.*.tls.acme_domains": "compiler/acme.py (the plan runtime/acme/manager.py runs)",
    "entrypoints.*.tls.acme_staging": "compiler/acme.py (the plan runtime/acme/manager.py runs)",
    "entrypoints.*.tls.acme_storage_path": "compiler/acme.py (the plan runtime/acme/manager.py runs)",
    "entrypoints.*.tls.acme_directory": "compiler/acme.py (the plan runtime/acme/manager.py runs)",
    "entrypoints.*.tls.acme_ca_bundle": "compiler/acme.py (the plan runtime/acme/manager.py runs)",
    "routers.*.tls.options": "compiler/tls_options.py (the plan runtime/tls_select.py builds)",
    "tcp_routers.*.tls.options": "compiler/tls_options.py (the plan runtime/tls_select.py builds)",
    "tls_options": "compiler/tls_options.py (the plan runtime/tls_select.py builds)",
    "tls_options.*.alpn_protocols": "runtime/tls.py",
    "tls_options.*.cipher_suites": "runtime/tls.py",
    "tls_options.*.curve_preferences": "runtime/tls.py (apply_options, through compiler/tls_groups.py)",
    "tls_options.*.client_auth": "runtime/tls.py",
    "tls_options.*.client_auth.ca_files": "runtime/tls.py",
    "tls_options.*.client_auth.client_auth_type": "compiler/schema.py (ClientAuthConfig.verify) runtime/tls.py",
    "tls_options.*.max_version": "runtime/tls.py",
    "tls_options.*.min_version": "runtime/tls.py",
    "tls_options.*.sni_strict": "runtime/tls.py",
    "certificate_resolvers": "compiler/acme.py (the plan runtime/acme/manager.py runs)",
    "certificate_resolvers.*.acme": "compiler/acme.py (the plan runtime/acme/manager.py runs)",
    "certificate_resolvers.*.acme.email": "runtime/acme/resolver.py",
    "certificate_resolvers.*.acme.directory": "runtime/acme/resolver.py",
    "certificate_resolvers.*.acme.ca_bundle": "runtime/acme/resolver.py",
    "certificate_resolvers.*.acme.storage": "runtime/acme/resolver.py",
    "certificate_resolvers.*.acme.key_type": "runtime/acme/resolver.py",
    "certificate_resolvers.*.acme.redis_url": "runtime/acme/resolver.py",
    "certificate_resolvers.*.acme.renew_before": "runtime/acme/resolver.py",
    "certificate_resolvers.*.acme.retry_initial": "runtime/acme/resolver.py",
    "certificate_resolvers.*.acme.retry_max": "runtime/acme/resolver.py",
    "certificate_resolvers.*.acme.http_challenge": "compiler/acme.py (the plan runtime/acme/manager.py runs)",
    "certificate_resolvers.*.acme.http_challenge.entrypoint": "compiler/lower.py (the acme-http@internal router)",
    "certificate_resolvers.*.acme.tls_challenge": "compiler/resolvers.py (AcmeConfig.challenge, read by runtime/acme/resolver.py)",
    "certificate_resolvers.*.acme.dns_challenge": "runtime/acme/dns01.py",
    "certificate_resolvers.*.acme.dns_challenge.provider": "runtime/acme/dns01.py",
    "certificate_resolvers.*.acme.dns_challenge.options": "runtime/acme/dns01.py (validated by the provider kind: stdlib/resolvers/)",
    "certificate_resolvers.*.acme.dns_challenge.propagation_timeout": "runtime/acme/dns01.py",
    "certificate_resolvers.*.acme.dns_challenge.polling_interval": "runtime/acme/dns01.py",
    "certificate_resolvers.*.acme.dns_challenge.resolvers": "runtime/acme/dns01.py (runtime/acme/propagation.py)",
    "routers.*.tls.cert_resolver": "compiler/acme.py (the plan runtime/acme/manager.py runs)",
    "routers.*.tls.domains": "compiler/acme.py (the plan runtime/acme/manager.py runs)",
    "routers.*.tls.domains.main": "compiler/acme.py (the plan runtime/acme/manager.py runs)",
    "routers.*.tls.domains.sans": "compiler/acme.py (the plan runtime/acme/manager.py runs)",
    "entrypoints.*.h2c": "runtime/connection.py (HttpConnection: sniff, prior knowledge or HTTP/1.1 only)",
    "entrypoints.*.max_connections": f"{_EP}, {_TCP_EP}",
    "entrypoints.*.trusted_proxies": "runtime/graph.py (forwarded headers, middlewares)",
    "entrypoints.*.timeouts": _EP,
    "entrypoints.*.timeouts.read_header": f"{_EP}, {_TCP_EP} (the ClientHello peek)",
    "entrypoints.*.timeouts.idle": f"{_EP}, {_TCP_EP}",
    "entrypoints.*.timeouts.read_body": "runtime/connection.py, runtime/h2connection.py",
    "entrypoints.*.underscore_headers": "runtime/ingress.py, runtime/protocols/underscores.py",
    "entrypoints.*.timeouts.websocket_idle": "runtime/connection.py, runtime/h2connection.py (the WebSocket relay)",
    "entrypoints.*.limits": _EP,
    "entrypoints.*.limits.request_line": _EP,
    "entrypoints.*.limits.header_bytes": _EP,
    "entrypoints.*.limits.header_count": _EP,
    "entrypoints.*.limits.websocket_message": "runtime/connection.py, runtime/h2connection.py (the WebSocket relay)",
    "entrypoints.*.limits.http2_max_streams": "runtime/connection.py (the HTTP/2 adapter)",
    "entrypoints.*.http": _PATHS,
    "entrypoints.*.http.sanitize_path": _PATHS,
    "entrypoints.*.http.encoded_characters": _PATHS,
    **{f"entrypoints.*.http.encoded_characters.{k}": _PATHS for k in S.EncodedCharacters.model_fields},
    "routers.*.rule": "runtime/router.py",
    "routers.*.service": "runtime/graph.py",
    "routers.*.entrypoints": "runtime/graph.py",
    "routers.*.middlewares": "runtime/graph.py",
    "routers.*.priority": "runtime/router.py",
    "services.*.load_balancer": _LB,
    "services.*.load_balancer.strategy": _LB,
    "services.*.load_balancer.servers": _LB,
    **{f"services.*.load_balancer.servers.{k}": v for k, v in _SERVERS.items()},
    "services.*.load_balancer.health_check": "runtime/service.py, runtime/l4/service.py (stdlib/health/)",
    **{
        f"services.*.load_balancer.health_check.{k}": "stdlib/health/http.py, stdlib/health/_scheduler.py"
        for k in S.HealthCheckConfig.model_fields
    },
    "services.*.load_balancer.agent_health": "compiler/schema.py (active_check, called by runtime/service.py)",
    **{
        f"services.*.load_balancer.agent_health.{k}": "stdlib/health/agent.py, stdlib/health/_scheduler.py"
        for k in S.AgentHealthConfig.model_fields
    },
    "services.*.load_balancer.health_check.status": "compiler/schema.py (status_range, called by stdlib/health/http.py)",
    "services.*.load_balancer.health_check.send": "stdlib/health/tcp.py",
    "services.*.load_balancer.health_check.expect": "stdlib/health/tcp.py",
    "services.*.load_balancer.passive_health": "runtime/service.py, runtime/l4/service.py (stdlib/health/passive.py)",
    **{
        f"services.*.load_balancer.passive_health.{k}": "stdlib/health/passive.py"
        for k in S.PassiveHealthConfig.model_fields
    },
    "services.*.load_balancer.sticky": "runtime/service.py (stdlib/services/sticky.py)",
    **{
        f"services.*.load_balancer.sticky.{k}": "stdlib/services/sticky.py"
        for k in ("cookie", "ttl", "secure", "http_only", "same_site", "max_entries")
    },
    "services.*.load_balancer.pass_host_header": "runtime/proxy.py",
    "services.*.load_balancer.strategy_options": "runtime/service.py, runtime/l4/service.py (the balancer kind: stdlib/balancers/)",
    "services.*.load_balancer.max_idle_connections": "runtime/upstream/",
    "services.*.load_balancer.max_connections": "runtime/upstream/",
    "services.*.mirror": "runtime/service.py (stdlib/services/mirror.py)",
    **{f"services.*.mirror.{k}": "stdlib/services/mirror.py" for k in S.MirrorConfig.model_fields},
    "services.*.mirror.service": "runtime/service.py (the shadow's service)",
    "services.*.failover": "stdlib/services/failover.py",
    "services.*.failover.service": "stdlib/services/failover.py",
    "services.*.scaling": _SCALER,
    **{f"services.*.scaling.{k}": v for k, v in _SCALING.items()},
    "services.*.revisions": "stdlib/scalers/_revisions.py",
    "services.*.revisions.name": "stdlib/scalers/_revisions.py",
    "services.*.revisions.traffic_percent": "stdlib/scalers/_revision_set.py",
    "services.*.revisions.servers": "runtime/service.py (a pool per revision)",
    **{f"services.*.revisions.servers.{k}": v for k, v in _SERVERS.items()},
    "services.*.revisions.strategy": "runtime/service.py (a pool per revision)",
    "services.*.revisions.tag": "stdlib/scalers/_revisions.py",
    "services.*.revisions.scaling": _SCALER,
    **{f"services.*.revisions.scaling.{k}": v for k, v in _SCALING.items()},
    "services.*.rollout": "stdlib/scalers/_revision_set.py (the machine: _rollout.py)",
    **{
        f"services.*.rollout.{f.alias or k}": "stdlib/scalers/_rollout.py"
        for k, f in S.RolloutConfig.model_fields.items()
    },
    "services.*.timeouts": "runtime/proxy.py",
    **{f"services.*.timeouts.{k}": "runtime/upstream/client.py" for k in S.ServiceTimeouts.model_fields},
    "services.*.timeouts.total": "runtime/proxy.py",
    "services.*.revision_header": "stdlib/scalers/_revision_set.py",
    "services.*.revision_cookie": "stdlib/scalers/_revision_set.py",
    "entrypoints.*.protocol": "runtime/entrypoints.py (HttpServer, l4.TcpServer or l4.UdpServer)",
    "entrypoints.*.udp_session_timeout_secs": "runtime/l4/udp_server.py (the ticker)",
    "entrypoints.*.udp_max_sessions": "runtime/l4/udp_server.py (eviction)",
    "udp_routers.*.service": "runtime/graph.py (UdpRoute)",
    "udp_routers.*.entrypoints": "runtime/graph.py (UdpRoute)",
    "entrypoints.*.tcp_allowed_ips": _TCP_EP,
    "entrypoints.*.proxy_protocol": "runtime/l4/proxy_accept.py",
    "entrypoints.*.proxy_protocol.trusted_ips": "runtime/l4/connection.py (TcpEntrypoint.trusts)",
    "routers.*.tls": "runtime/l4/routes.py (a routers block on a TCP entrypoint; refused on HTTP routers)",
    "routers.*.tls.passthrough": "runtime/l4/routes.py",
    "tcp_routers.*.rule": "runtime/l4/routes.py",
    "tcp_routers.*.service": "runtime/l4/routes.py",
    "tcp_routers.*.entrypoints": "runtime/l4/routes.py",
    "tcp_routers.*.middlewares": "runtime/l4/routes.py (tcp-filter states, runtime/l4/connection.py)",
    "tcp_routers.*.priority": "compiler/rules/priority.py (ordered_routers, compiler/route.py)",
    "tcp_routers.*.tls": "runtime/l4/routes.py, runtime/l4/connection.py",
    "tcp_routers.*.tls.passthrough": "runtime/l4/routes.py",
    "tcp_routers.*.tls.cert_resolver": "compiler/acme.py (the plan runtime/acme/manager.py runs)",
    "tcp_routers.*.tls.domains": "compiler/acme.py (the plan runtime/acme/manager.py runs)",
    "tcp_routers.*.tls.domains.main": "compiler/acme.py (the plan runtime/acme/manager.py runs)",
    "tcp_routers.*.tls.domains.sans": "compiler/acme.py (the plan runtime/acme/manager.py runs)",
    "services.*.load_balancer.servers.address": "runtime/l4/service.py",
    "services.*.timeouts.termination_delay": "runtime/l4/relay.py",
    "services.*.proxy_protocol": "runtime/l4/connection.py",
    "services.*.proxy_protocol.version": "runtime/protocols/proxy_protocol.py",
    "services.*.ftp": "runtime/l4/connection.py (runtime/l4/ftp.py)",
    "services.*.ftp.passive_ports": "runtime/l4/ftp.py",
    "services.*.ftp.passive_address": "runtime/l4/ftp.py",
    "services.*.kind": "runtime/graph.py (a service kind's block, e.g. model_router: stdlib/services/)",
    "services.*.kind_options": "runtime/graph.py (validated by the service kind: stdlib/services/)",
    "api.address": "compiler/lower.py (the api entrypoint), runtime/entrypoints.py",
    "api.middlewares": "compiler/lower.py (the chain of the internal routers)",
    "api.ping": "compiler/internal.py (the ping@internal router)",
    "api.dashboard": "compiler/internal.py (the dashboard@internal router), runtime/admin/dashboard.py",
}


def schema_names() -> dict[str, set[str]]:
    """Every key path of the configuration schema (found by walking the models recursively),
    with the names the code may read it by: its field name and its alias."""
    return {
        f"{path}.{f.alias or n}" if path else f.alias or n: {n, f.alias or n}
        for path, m in blocks()
        for n, f in m.model_fields.items()
    }


def schema_keys() -> set[str]:
    return set(schema_names())


_ROOT = Path(__file__).resolve().parents[2]
_MODULES = re.compile(r"(?:compiler|runtime|stdlib)/[\w/]*\w(?:\.py)?")


@cache
def _code_names(path: Path) -> frozenset[str]:
    """The names a module uses in code, and its one-word string literals (`tree.get("api")`):
    comments and prose (docstrings) are left out."""
    names: set[str] = set()
    for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if token.type == tokenize.NAME:
            names.add(token.string)
        elif token.type == tokenize.STRING and (word := re.fullmatch(r"[rb]?[\"'](\w+)[\"']", token.string)):
            names.add(word[1])
    return frozenset(names)


def test_each_key_is_read_where_the_list_says() -> None:
    """An entry names the modules that act on its key, and one of them uses the key (its field
    name or alias) in code: a mention in a comment or a docstring is not a read."""
    names = schema_names()
    wrong = []
    for key, where in RUNTIME_READS.items():
        paths = [_ROOT / m for m in _MODULES.findall(where)]
        modules = [f for p in paths for f in ([p] if p.suffix == ".py" else sorted(p.rglob("*.py")))]
        if not modules or not all(p.exists() for p in paths):
            wrong.append(f"{key}: names no module of the tree ({where})")
        elif not any(names[key] & _code_names(f) for f in modules):
            wrong.append(f"{key}: not read in code by {where}")
    assert not wrong, wrong


def test_every_key_is_read_by_the_runtime_or_refused_as_not_available_yet() -> None:
    silent = sorted(k for k in schema_keys() if k not in RUNTIME_READS and not is_unavailable(k))
    assert not silent, (
        "keys that validate but nothing reads: make the runtime act on them (and list them in "
        f"RUNTIME_READS) or add them to compiler/unavailable.py: {silent}"
    )


def test_the_lists_name_only_keys_of_the_schema() -> None:
    keys = schema_keys()
    assert not sorted(set(RUNTIME_READS) - keys), "stale RUNTIME_READS entries"
    assert not [u.path for u in UNAVAILABLE if u.path.removesuffix(".*") not in keys | _top_level()]
    assert not [k for k in RUNTIME_READS if is_unavailable(k)], "a key cannot be both read and unavailable"


def _top_level() -> set[str]:
    return {p.removesuffix(".*") for p in TOP_LEVEL if p}


def test_walk_finds_nested_keys() -> None:
    keys = schema_keys()
    assert {"services.*.revisions.scaling.buffer_size", "entrypoints.*.tls.certificates.key_file"} <= keys
    assert {"routers.*.tls.passthrough", "providers.file.directory"} <= keys


def _compile(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "gw.hcl"
    path.write_text(
        'routers "r" {\n  rule = "PathPrefix(`/`)"\n  service = "api"\n}\n'
        'services "api" {\n  load_balancer { servers = [{ url = "http://127.0.0.1:9000" }] }\n}\n' + text
    )
    result = compile_config([str(path)], {})
    return [f"{d.span.line}:{d.span.col} {d.message}" for d in result.diagnostics.errors if d.span]


def test_a_tcp_router_resolver_is_checked_at_its_line(tmp_path: Path) -> None:
    """Once unavailable (compiler/unavailable.py), a TCP router's cert_resolver is now resolved."""
    errors = _compile(tmp_path, 'tcp_routers "t" {\n  service = "api"\n  tls { cert_resolver = "le" }\n}\n')
    expected = "10:9 TCP router 't' uses unknown certificate resolver 'le'"
    assert any(e.startswith(expected) for e in errors), errors
    assert not any("is not available yet" in e for e in errors), errors


def test_keys_left_at_their_default_are_accepted(tmp_path: Path) -> None:
    text = (
        "access_log = false\n"
        'entrypoints "web" {\n  address = "127.0.0.1:0"\n  protocol = "http"\n  tcp_allowed_ips = []\n'
        "  udp_max_sessions = 10000\n  udp_session_timeout_secs = 30\n}\n"
        'routers "t" {\n  rule = "PathPrefix(`/t`)"\n  service = "api"\n  tls = false\n}\n'
    )
    assert _compile(tmp_path, text) == []


def test_a_key_of_the_other_protocols_services_is_an_error_at_its_line(tmp_path: Path) -> None:
    """Keys marked HTTP_ONLY or TCP_ONLY in the schema: on a service of the other protocol
    nothing would read them, so they fail at their line."""
    text = (
        'services "db" {\n  load_balancer {\n    servers = [{ address = "127.0.0.1:5432" }]\n'
        '    pass_host_header = false\n    health_check { path = "/up" }\n  }\n'
        '  timeouts { total = "1m" }\n}\n'
        'services "web" {\n  load_balancer {\n    servers = [{ url = "http://127.0.0.1:9001" }]\n'
        '    health_check { send = "PING" }\n  }\n'
        '  proxy_protocol { version = 1 }\n  timeouts { termination_delay = "1s" }\n'
        '  ftp { passive_ports = "30000-30009" }\n}\n'
    )
    errors = [e for e in _compile(tmp_path, text) if "services only" in e]
    assert sorted(errors, key=lambda e: [int(n) for n in e.split()[0].split(":")]) == [
        "11:5 service 'db': 'pass_host_header' applies to HTTP services only",
        "12:20 service 'db': 'path' applies to HTTP services only",
        "14:14 service 'db': 'total' applies to HTTP services only",
        "19:20 service 'web': 'send' applies to TCP services only",
        "21:3 service 'web': 'proxy_protocol' applies to TCP services only",
        "22:14 service 'web': 'termination_delay' applies to TCP services only",
        "23:3 service 'web': 'ftp' applies to TCP services only",
    ]
