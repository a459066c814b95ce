"""Provider fragments: configuration that comes from outside the files, merged into them.

A provider (etcd, Redis, DNS, Kubernetes... stdlib/providers/) yields a `Fragment`: a config tree
of the shape the files merge into (`{"routers": {name: body}, "services": ..., "middlewares":
...}`, the same keys and values an HCL block would give) and, for each key path in it, a short
description of where it came from (`key a3s/http/routers/api/rule`, `Ingress default/web`), so
a diagnostic about it names the provider and the source.

`merge_fragments` adds them to the loaded files, as Traefik does:

- every name a provider gives is qualified `name@provider`: `api` from etcd is `api@etcd`;
- a reference inside a fragment (a router's `service`, `middlewares` and `tls.options`, a service's `mirror`
  and `failover`, a service kind's targets) written unqualified names the provider's own object
  when it has one, and otherwise the files' (`llm`); written qualified it names that provider's
  (`llm@redis`); `llm@file` names the files' `llm` (the files are the `file` provider: their
  names stay unqualified in the graph, `@file` is accepted wherever a name is);
- a provider gives routers, services, middlewares and TLS options only (no entrypoints or other
  settings), and at
  most `providers { max_routers }` routers (10,000 by default); it may also give TLS
  certificates (`tls_certificates`), which every entrypoint with a `tls` block serves after its
  own, by SNI (Traefik's dynamic `tls.certificates`).

What a provider found malformed while building its fragment (a value that is not UTF-8, a key
outside the layout) travels in `problems` and becomes an error at its source, so the fragment is
rejected like one that does not compile.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .diagnostics import Diagnostics
from .source import SourceFile, Span

if TYPE_CHECKING:  # merge.py reads the files: a gateway that only runs providers does not load it
    from .merge import LoadedConfig, SpanMap

__all__ = [
    "FILE_PROVIDER",
    "SECTIONS",
    "Fragment",
    "merge_fragments",
    "provider_of",
    "read_snapshot",
    "write_snapshot",
]

FILE_PROVIDER = "file"
Path = tuple[str | int, ...]  # a key path in the tree, as merge.py spells it
# The top-level sections a provider may fill; names are qualified in each.
SECTIONS = ("routers", "tcp_routers", "udp_routers", "services", "middlewares", "tls_options")
# A list of {cert_file, key_file}: certificates a provider found (Kubernetes TLS Secrets), added to
# every entrypoint that terminates TLS, after its own, as Traefik's dynamic `tls.certificates`.
CERTIFICATES = "tls_certificates"
_ROUTERS = ("routers", "tcp_routers", "udp_routers")
DEFAULT_MAX_ROUTERS = 10_000
_SNAPSHOT_SUFFIX = ".fragment.json"


@dataclass(frozen=True)
class Fragment:
    """One provider's configuration: `tree` in the files' shape, `origins` per key path."""

    provider: str
    tree: Mapping[str, Any]
    origins: Mapping[Path, str] = field(default_factory=dict)
    # (origin, message): what the provider could not read; each is an error at its origin.
    problems: tuple[tuple[str, str], ...] = ()

    def routers(self) -> int:
        return sum(len(self.tree.get(section) or {}) for section in _ROUTERS)

    def origin(self, path: Sequence[str | int]) -> str:
        """The origin of the longest prefix of `path` that has one (or the provider's name)."""
        key = tuple(path)
        for end in range(len(key), 0, -1):
            found = self.origins.get(key[:end])
            if found is not None:
                return found
        return self.provider

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "tree": self.tree,
            "origins": [[list(path), origin] for path, origin in self.origins.items()],
            "problems": [[origin, message] for origin, message in self.problems],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fragment:
        return cls(
            provider=str(data["provider"]),
            tree=dict(data.get("tree") or {}),
            origins={tuple(path): str(origin) for path, origin in data.get("origins") or []},
            problems=tuple((str(origin), str(message)) for origin, message in data.get("problems") or []),
        )


def provider_of(name: str) -> str:
    """The provider a graph name came from: `api@etcd` -> etcd; the files' `api` -> file."""
    _, at, provider = name.rpartition("@")
    return provider if at else FILE_PROVIDER


def qualify(name: str, provider: str) -> str:
    return f"{name}@{provider}"


# -- merging ----------------------------------------------------------------------------------


def merge_fragments(
    loaded: LoadedConfig, fragments: Iterable[Fragment], diags: Diagnostics, *, max_routers: int | None = None
) -> LoadedConfig:
    """The loaded files with every fragment's objects added under qualified names."""
    fragments = list(fragments)
    if not fragments:
        return loaded
    limit = max_routers if max_routers is not None else _max_routers(loaded.tree)
    tree = {key: dict(value) if key in SECTIONS else value for key, value in loaded.tree.items()}
    from .merge import LoadedConfig

    spans: dict[Path, Span] = {}
    sources = dict(loaded.sources)
    for fragment in fragments:
        _merge_one(fragment, tree, loaded.spans, spans, sources, diags, limit)
    return LoadedConfig(tree, loaded.spans.extended(spans), sources)


def _values(value: Any, path: Path) -> Iterator[tuple[Path, Any]]:
    """(path, value) of every value under `value`, blocks and lists included."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*path, key), child
            yield from _values(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield (*path, index), child
            yield from _values(child, (*path, index))


def _child(value: Any, step: str | int) -> Any:
    if isinstance(value, dict):
        return value.get(step)
    if isinstance(value, list) and isinstance(step, int) and 0 <= step < len(value):
        return value[step]
    return None


def _max_routers(tree: Mapping[str, Any]) -> int:
    """`providers { max_routers }` before the settings are validated (which reports a bad one):
    an HCL number, or the text of an environment override (`GATEWAY_PROVIDERS__MAX_ROUTERS=50`)."""
    providers = tree.get("providers")
    value = providers.get("max_routers") if isinstance(providers, dict) else None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else DEFAULT_MAX_ROUTERS


def _merge_one(
    fragment: Fragment,
    tree: dict[str, Any],
    file_spans: SpanMap,
    spans: dict[Path, Span],
    sources: dict[str, SourceFile],
    diags: Diagnostics,
    limit: int,
) -> None:
    provider = fragment.provider
    origins = fragment.origins

    def span(path: Sequence[str | int]) -> Span:
        return Span(f"{provider}: {fragment.origin(path)}", 1, 1)

    for origin, message in fragment.problems:
        diags.error(f"provider {provider}: {message}", Span(f"{provider}: {origin}", 1, 1), code="provider")
    if fragment.routers() > limit:
        diags.error(
            f"provider {provider} gives {fragment.routers()} routers, more than the {limit} allowed",
            Span(f"{provider}: {provider}", 1, 1),
            hint="raise providers { max_routers = ... } if this many is intended",
            code="provider",
        )
        return
    own = {section: set(fragment.tree.get(section) or {}) for section in SECTIONS}
    own["tcp_services"] = own["services"]
    for section, objects in fragment.tree.items():
        if section == CERTIFICATES:
            _add_certificates(objects, tree, spans, span, diags, provider)
            continue
        if section not in SECTIONS:
            diags.error(
                f"provider {provider} cannot set '{section}': a provider gives "
                "routers, services, middlewares and tls_options only",
                span((section,)),
                code="provider",
            )
            continue
        if not isinstance(objects, Mapping):
            diags.error(f"provider {provider}: '{section}' is not a map of names", span((section,)))
            continue
        target = tree.setdefault(section, {})
        for name, body in objects.items():
            qualified = qualify(str(name), provider)
            if "@" in str(name):
                diags.error(
                    f"provider {provider}: the name '{name}' has an '@'; names are qualified "
                    f"by the gateway ('{name}' becomes '{qualified}')",
                    span((section, name)),
                    code="provider",
                )
                continue
            if qualified in target:
                first = file_spans.find((section, qualified)) or spans.get((section, qualified))
                diags.error(
                    f"'{qualified}' is already defined at {first}", span((section, name)), code="duplicate"
                )
                continue
            target[qualified] = _resolved(section, body, provider, own)
            spans[(section, qualified)] = span((section, name))
            for path, value in _values(body, (section, name)):
                where = origins.get(path)
                if where is not None:
                    # A text value with an origin of its own is a one-line source, quoted as in a
                    # file: a diagnostic at a column of it (a rule's syntax error) shows a caret.
                    file = f"{provider}: {where}"
                    spans[(section, qualified, *path[2:])] = Span(file, 1, 1)
                    if isinstance(value, str) and "\n" not in value:
                        sources[file] = SourceFile.from_text(file, json.dumps(value))


def _add_certificates(
    certificates: Any,
    tree: dict[str, Any],
    spans: dict[Path, Span],
    span: Callable[[Sequence[str | int]], Span],
    diags: Diagnostics,
    provider: str,
) -> None:
    """The provider's certificates join every entrypoint with a `tls` block, chosen by SNI after
    the entrypoint's own (its first certificate stays the default)."""
    if not isinstance(certificates, list) or not all(isinstance(c, Mapping) for c in certificates):
        diags.error(
            f"provider {provider}: '{CERTIFICATES}' is not a list of certificates", span((CERTIFICATES,))
        )
        return
    found = tree.get("entrypoints")
    entrypoints: dict[str, Any] = dict(found) if isinstance(found, dict) else {}
    terminating = [
        n for n, ep in entrypoints.items() if isinstance(ep, dict) and isinstance(ep.get("tls"), dict)
    ]
    if certificates and not terminating:
        diags.warning(
            f"provider {provider} gives {len(certificates)} TLS certificate(s), but no entrypoint has a "
            "tls block: they are not served",
            span((CERTIFICATES,)),
            code="provider",
        )
        return
    tree["entrypoints"] = entrypoints
    for name in terminating:
        tls = dict(entrypoints[name]["tls"])
        own = list(tls.get("certificates") or [])
        tls["certificates"] = own + [dict(c) for c in certificates]
        entrypoints[name] = {**entrypoints[name], "tls": tls}
        for index in range(len(certificates)):
            spans[("entrypoints", name, "tls", "certificates", len(own) + index)] = span(
                (CERTIFICATES, index)
            )


def _resolved(section: str, body: Any, provider: str, own: Mapping[str, set[str]]) -> Any:
    """A copy of `body` with the names it references resolved (see the module docstring)."""
    if not isinstance(body, dict):
        return body
    body = dict(body)  # a copy: the fragment stays as given (what changes below is copied too)

    def resolve(name: Any, kind: str) -> Any:
        if not isinstance(name, str):
            return name
        base, at, where = name.rpartition("@")
        if at:
            return base if where == FILE_PROVIDER else name
        return qualify(name, provider) if name in own[kind] else name

    if section in _ROUTERS:
        if "service" in body:
            body["service"] = resolve(body["service"], "services")
        if isinstance(body.get("middlewares"), list):
            body["middlewares"] = [resolve(m, "middlewares") for m in body["middlewares"]]
        tls = body.get("tls")
        if isinstance(tls, dict) and "options" in tls:
            body["tls"] = {**tls, "options": resolve(tls["options"], "tls_options")}
    elif section == "services":
        for key in ("mirror", "failover"):
            block = body.get(key)
            if isinstance(block, dict) and "service" in block:
                body[key] = {**block, "service": resolve(block["service"], "services")}
        _resolve_kind_references(body, lambda n: resolve(n, "services"))
    return body


def _resolve_kind_references(body: dict[str, Any], resolve: Any) -> None:
    """A service kind's block (`model_router { ... }`) names services at the paths its config's
    `service_references()` gives; the raw strings there are resolved in place."""
    from ..stdlib import registry

    for key, block in list(body.items()):
        kind = registry.lookup("service", key)
        if kind is None or not isinstance(block, dict):
            continue
        body[key] = block = json.loads(json.dumps(block))  # a copy, changed in place below
        try:
            config = kind.config.model_validate(block)
        except ValueError:  # reported by the compile that follows
            continue
        for path, _name in getattr(config, "service_references", list)():
            _replace_at(block, path, resolve)


def _replace_at(value: Any, path: Sequence[str | int], resolve: Any) -> None:
    for step in path[:-1]:
        value = _child(value, step)
    last = path[-1] if path else None
    if isinstance(value, dict) and last in value:
        value[last] = resolve(value[last])


# -- snapshots --------------------------------------------------------------------------------


def write_snapshot(directory: str, fragments: Iterable[Fragment]) -> list[str]:
    """One `<provider>.fragment.json` per fragment in `directory`; the paths written."""
    os.makedirs(directory, exist_ok=True)
    written = []
    for fragment in fragments:
        path = os.path.join(directory, fragment.provider + _SNAPSHOT_SUFFIX)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(fragment.to_json(), handle, indent=2, sort_keys=True)
            handle.write("\n")
        written.append(path)
    return written


def read_snapshot(directory: str, diags: Diagnostics) -> list[Fragment]:
    """The fragments `write_snapshot` saved in `directory` (`providers dump`), in name order."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(_SNAPSHOT_SUFFIX))
    except OSError as exc:
        diags.error(f"cannot read the provider snapshot {directory}: {exc.strerror or exc}", code="io")
        return []
    fragments = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            with open(path, encoding="utf-8") as handle:
                fragments.append(Fragment.from_json(json.load(handle)))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            diags.error(f"not a provider fragment: {exc}", Span(path, 1, 1), code="io")
    return fragments
