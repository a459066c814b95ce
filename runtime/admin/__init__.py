"""The gateway's own services: `api@internal` (the admin JSON API), `ping@internal` and
`dashboard@internal` (the web dashboard).

This is the *admin HTTP API*, served to operators. It is a different thing from
`runtime/api.py`, the contract that node kinds program against; the names are kept apart.

    host.py       what the API needs from the gateway that serves it (`AdminHost`)
    services.py   internal service name -> handler, built with each graph generation
    ping.py       ping@internal: 200 {"status":"ok"}
    prometheus.py prometheus@internal: the Prometheus exposition (also GET /api/gateway/metrics)
    endpoints.py  api@internal: the path/method table, 404/405 JSON, never a traceback
    inventory.py  health, routes, services, backends (read from the pinned generation)
    scaling.py    scalers and rollouts
    config.py     the active configuration and the IR, secrets redacted
    reload.py     POST /api/gateway/reload
    live.py       GET /api/gateway/live: the live feed, SSE or WebSocket (feed_socket.py)
    dashboard.py  dashboard@internal: the files of static/ (HTML, CSS, JS modules), with a CSP
    client.py     a typed httpx client of the API (the CLI's `status` and `reload`)
    tables.py     plain-text tables for the CLI
    cli.py        `a3s-gateway status` and `a3s-gateway reload`
"""

from __future__ import annotations

from .host import AdminHost
from .services import internal_service

__all__ = ["AdminHost", "internal_service"]
