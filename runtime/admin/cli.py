"""`a3s-gateway status --api URL` and `a3s-gateway reload --api URL` (their flags: runtime/cli.py).

status   health, routers, backends and scalers as tables (or --format json)
reload   exit 0 when the gateway reloaded; 1 with the diagnostics when the configuration
         was rejected (the running one keeps serving); 2 when the API cannot be used
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ...compiler.diagnostics import Diagnostic, render_text
from .client import AdminClient, AdminError
from .tables import table

EXIT_OK, EXIT_REJECTED, EXIT_UNREACHABLE = 0, 1, 2


def _client(args: argparse.Namespace) -> AdminClient:
    auth = None
    if args.user:
        name, _, password = args.user.partition(":")
        auth = (name, password)
    return AdminClient(args.api, auth=auth, timeout=args.timeout)


def status_command(args: argparse.Namespace) -> int:
    try:
        with _client(args) as api:
            report = {
                "health": api.health(),
                "routes": api.routes(),
                "backends": api.backends(),
                "scalers": api.scalers(),
            }
    except AdminError as exc:
        print(f"a3s-gateway status: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.format == "json":
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(render_status(report))
    return EXIT_OK


def render_status(report: dict[str, Any]) -> str:
    health = report["health"]
    head = f"gateway: {health.get('status')} (state {health.get('state', '-')}, generation "
    head += f"{health.get('generation', '-')}, reloads {health.get('reloads', 0)})"
    routes = [
        (r["name"], r["rule"], r["priority"], r["entrypoints"], r["middlewares"], r["service"])
        for r in report["routes"]
    ]
    backends = [
        (
            b["service"],
            b["url"],
            "up" if b["healthy"] else "down",
            b["in_flight"],
            b["open_connections"],
            *_latency(b),
        )
        for b in report["backends"]
    ]
    scalers = [
        (s["name"], _ready(s), _replicas(s, "desired"), _buffered(s), s.get("executor"))
        for s in report["scalers"]
    ]
    return "\n\n".join(
        [
            head,
            table("routers", ["name", "rule", "priority", "entrypoints", "middlewares", "service"], routes),
            table(
                "backends",
                ["service", "url", "health", "in flight", "connections", "p50 ms", "p99 ms"],
                backends,
            ),
            table("scalers", ["name", "ready", "desired", "buffered", "executor"], scalers),
        ]
    )


def _latency(backend: dict[str, Any]) -> tuple[object, object]:
    """The p50 and p99 to the response head, to a tenth of a millisecond ("-" before any exchange)."""
    latency = backend.get("latency") or {}
    p50, p99 = latency.get("p50_ms"), latency.get("p99_ms")
    return (None if p50 is None else f"{p50:.1f}", None if p99 is None else f"{p99:.1f}")


def _replicas(scaler: dict[str, Any], key: str) -> object:
    replicas = scaler.get("replicas")
    return replicas.get(key, "-") if isinstance(replicas, dict) else "-"


def _ready(scaler: dict[str, Any]) -> object:
    ready = _replicas(scaler, "ready")
    return len(ready) if isinstance(ready, list) else ready


def _buffered(scaler: dict[str, Any]) -> object:
    buffer = scaler.get("buffer")
    return buffer.get("queued", "-") if isinstance(buffer, dict) else "-"


def reload_command(args: argparse.Namespace, *, color: bool = False) -> int:
    try:
        with _client(args) as api:
            result = api.reload()
    except AdminError as exc:
        payload = exc.payload if isinstance(exc.payload, dict) else {}
        if exc.status == 422 and "diagnostics" in payload:
            if args.format == "json":
                print(json.dumps(payload, indent=2, sort_keys=True))
            else:
                print(f"a3s-gateway reload: {exc}", file=sys.stderr)
                diagnostics = (Diagnostic.from_json(d) for d in payload["diagnostics"])
                print(render_text(diagnostics, color=color), file=sys.stderr)
            return EXIT_REJECTED
        print(f"a3s-gateway reload: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.format == "json":
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        changes = result.get("changes", {})
        counts = ", ".join(f"{len(v)} {k}" for k, v in changes.items())
        print(f"reloaded: generation {result.get('generation')} ({counts})")
    return EXIT_OK
