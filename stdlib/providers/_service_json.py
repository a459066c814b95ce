"""The `/.well-known/a3s-service.json` document (A3S's discovery contract) and what it becomes.

    {
      "name": "auth-service",                 the service's name (seeds of one name are its servers)
      "version": "1.2.0",
      "routes": [{"rule": "PathPrefix(`/auth`)", "middlewares": ["rate-limit"], "priority": 0}],
      "health_path": "/health",               default /health
      "weight": 1                             default 1
    }

Each healthy seed is a server (its base URL, with its weight) of the service it names; each route
of the service is a router `<name>-<i>` to it (the routes of the first seed, in seed order, as
A3S does). Middlewares are names, resolved like any name in a fragment (`rate-limit` is the
files' middleware unless the fragment has one; `x@file` is explicit). A document that is not
JSON or not of this shape is a problem naming the seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._found import Found, safe_name

__all__ = ["WELL_KNOWN_PATH", "Seen", "ServiceDoc", "parse_service_doc", "translate_seeds"]

WELL_KNOWN_PATH = "/.well-known/a3s-service.json"


class RouteDoc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")  # A3S ignores fields it does not know
    rule: str
    middlewares: list[str] = []
    priority: int = 0


class ServiceDoc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")  # A3S ignores fields it does not know
    name: str = Field(min_length=1)
    version: str
    routes: list[RouteDoc] = []
    # A path on the seed: without its leading `/` the seed's text would end the URL's authority
    # (`http://seed:8000@elsewhere/` probes another host; `http://seed:8000health` is no URL).
    health_path: str = Field(default="/health", pattern="^/")
    weight: int = Field(default=1, ge=0)


def parse_service_doc(body: bytes) -> ServiceDoc | str:
    """The document, or why it is not one (a one-line reason, never an exception)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return f"{WELL_KNOWN_PATH} is not JSON: {exc}"
    try:
        return ServiceDoc.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        return f"{WELL_KNOWN_PATH}: {where}: {first['msg']} ({exc.error_count()} error(s))"


@dataclass(frozen=True)
class Seen:
    """What one seed last said: its document (or why it has none)."""

    url: str
    doc: ServiceDoc | None = None
    error: str | None = None


def translate_seeds(found: Found, seeds: list[Seen], entrypoints: list[str]) -> None:
    """Add a service per name among the seeds' documents, and its routers."""
    services: dict[str, list[tuple[Seen, ServiceDoc]]] = {}
    for seen in seeds:
        if seen.error is not None:
            found.problem(f"seed {seen.url}", seen.error)
        elif seen.doc is not None:
            services.setdefault(seen.doc.name, []).append((seen, seen.doc))
    for name, members in services.items():
        origin = f"seed {members[0][0].url}"
        servers = [{"url": seen.url.rstrip("/"), "weight": doc.weight} for seen, doc in members]
        service = found.add("services", safe_name(name), {"load_balancer": {"servers": servers}}, origin)
        for index, route in enumerate(members[0][1].routes):
            router: dict[str, Any] = {"rule": route.rule, "service": service}
            if route.middlewares:
                router["middlewares"] = list(route.middlewares)
            if route.priority:
                router["priority"] = route.priority
            if entrypoints:
                router["entrypoints"] = list(entrypoints)
            found.add("routers", safe_name(name, index), router, origin)
