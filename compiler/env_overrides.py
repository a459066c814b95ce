"""Environment overrides: `GATEWAY_SERVICES__LLM__LOAD_BALANCER__STRATEGY=p2c` sets that key.

As AI-Gateway takes any key from `GATEWAY_`-prefixed variables. The name after `GATEWAY_` is the
key path, its segments joined by a double underscore, matched to the configuration's keys and
labels case-insensitively (a `-` in a label is written `_`: `services "my-api"` is `MY_API`):

    GATEWAY_LOG_LEVEL=debug                                  log_level = "debug"
    GATEWAY_SERVICES__LLM__LOAD_BALANCER__STRATEGY=p2c       services "llm" { load_balancer { strategy = "p2c" } }
    GATEWAY_ROUTERS__API__MIDDLEWARES__0=auth                the first element of the router's middlewares
    GATEWAY_ENTRYPOINTS__WEB__ADDRESS=:9000                  entrypoints "web" { address = ":9000" }

The value is text, read as the HCL value would be (`"30"`, `"true"`, `"5s"`); a value starting
with `[` or `{` is read as JSON (a list or a map). An override applies after the files are
merged, over the value they set or where they set none, and is validated with them: a key the
block does not have is an error naming the variable, with the block's "did you mean" hint.
The names of labelled blocks (routers, services ...) must exist: an override changes a block, it
never creates one (an error with a hint). A `GATEWAY_` variable with no double underscore that
names no top-level setting (`GATEWAY_API_KEYS` for a `${...}` interpolation) is not an override;
`GATEWAY_ENV` picks the overlay file (compiler/overlay.py). The file provider's block is the one
thing an override cannot set: its files are read with the configuration's, before overrides apply.

`compile --check --explain-env` lists what each variable set (`explain`).
"""

from __future__ import annotations

import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .diagnostics import Diagnostics, did_you_mean
from .keys import TOP_LEVEL
from .merge import LoadedConfig, Path
from .schema import Settings
from .source import SourceFile, Span

__all__ = ["PREFIX", "Override", "apply_env_overrides", "explain"]

PREFIX = "GATEWAY_"
_RESERVED = {"GATEWAY_ENV"}
# Top-level keys whose entries are named blocks (`routers "api"`, `certificate_resolvers "le"`):
# an override must name an existing one. Both sets come from the schema, so a new top-level key
# can be overridden as soon as it exists.
_LABELLED = (
    {"middlewares"}
    | {path.removesuffix(".*") for path in TOP_LEVEL if path.endswith(".*")}
    | {name for name, field in Settings.model_fields.items() if typing.get_origin(field.annotation) is dict}
)
_TOP = (
    _LABELLED
    | {path for path in TOP_LEVEL if path and "." not in path}
    | set(Settings.model_fields)
    | {field.alias for field in Settings.model_fields.values() if field.alias}
)


@dataclass(frozen=True)
class Override:
    variable: str
    path: Path  # the key path it sets
    value: Any
    previous: Any  # what the files said (None: nothing)
    previous_at: Span | None


def apply_env_overrides(
    loaded: LoadedConfig, env: Mapping[str, str], diags: Diagnostics
) -> tuple[LoadedConfig, list[Override]]:
    """The loaded files with every `GATEWAY_` override applied (see the module docstring)."""
    variables = sorted((k, v) for k, v in env.items() if _is_override(k))
    if not variables:
        return loaded, []
    tree = json.loads(json.dumps(loaded.tree))  # plain data: a deep copy
    spans: dict[Path, Span] = {}
    sources = dict(loaded.sources)
    done = []
    for variable, text in variables:
        origin = f"env {variable}"
        sources[origin] = SourceFile.from_text(origin, f"{variable}={text}")
        at = Span(origin, 1, 1)
        path = _resolve(tree, variable, at, diags, spans)
        if path is None:
            continue
        if path[:2] == ("providers", "file"):
            diags.error(
                f"{variable}: the file provider's files are read with the configuration files, "
                "before the environment's overrides",
                at,
                hint="set providers { file { ... } } in a file, or in an --env overlay file",
                code="env",
            )
            continue
        parent = _walk(tree, path[:-1])
        value = _parse(text)
        previous = parent.get(path[-1]) if isinstance(parent, dict) else parent[path[-1]]
        if isinstance(previous, (dict, list)) and not isinstance(value, (dict, list)):
            what = "a block" if isinstance(previous, dict) else "a list"
            diags.error(f"{variable}: '{_dotted(path)}' is {what}; set one of its keys", at, code="env")
            continue
        parent[path[-1]] = value
        spans[path] = at
        done.append(Override(variable, path, value, previous, loaded.spans.get(path)))
    return LoadedConfig(tree, loaded.spans.extended(spans), sources), done


def _is_override(name: str) -> bool:
    if not name.startswith(PREFIX) or name in _RESERVED:
        return False
    rest = name[len(PREFIX) :]
    return "__" in rest or rest.lower() in _TOP


def _resolve(
    tree: dict[str, Any], variable: str, at: Span, diags: Diagnostics, created: dict[Path, Span]
) -> Path | None:
    """The key path `variable` names in `tree` (creating the blocks on the way that the files
    do not set); None, reported, when it names none."""
    segments = variable[len(PREFIX) :].split("__")
    if not all(segments):
        diags.error(f"{variable}: an empty key segment (three underscores?)", at, code="env")
        return None
    path: list[str | int] = []
    node: Any = tree
    for depth, segment in enumerate(segments):
        key = _key(node, path, segment, variable, at, diags)
        if key is None:
            return None
        path.append(key)
        if depth < len(segments) - 1:
            if isinstance(node, dict) and key not in node:
                created[tuple(path)] = at
            node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
    return tuple(path)


def _key(
    node: Any, path: list[str | int], segment: str, variable: str, at: Span, diags: Diagnostics
) -> str | int | None:
    """The key of `node` that `segment` names (see the module docstring), or None, reported."""
    where = _dotted(path)
    if isinstance(node, list):
        if segment.isdigit() and int(segment) < len(node):
            return int(segment)
        diags.error(f"{variable}: '{where}' has {len(node)} elements, no index {segment}", at, code="env")
        return None
    if not isinstance(node, dict):
        diags.error(f"{variable}: '{where}' is a value, it has no keys", at, code="env")
        return None
    for key in node:
        if isinstance(key, str) and key.upper().replace("-", "_") == segment.upper():
            return key
    name = segment.lower()
    if not path and name not in _TOP:
        hint = did_you_mean(name, sorted(_TOP)) or "top-level keys: " + ", ".join(sorted(_TOP))
        diags.error(f"{variable}: the configuration has no key '{name}'", at, hint=hint, code="env")
        return None
    if len(path) == 1 and path[0] in _LABELLED:
        names = [str(k) for k in node]
        known = did_you_mean(name, names) or (f"known: {', '.join(names)}" if names else "there is none")
        diags.error(
            f"{variable}: there is no {str(path[0])[:-1].replace('_', ' ')} '{name}' to override (an override changes a block, "
            "it never creates one)",
            at,
            hint=known,
            code="env",
        )
        return None
    return name


def _walk(tree: Any, path: Path) -> Any:
    for step in path:
        tree = tree[step]
    return tree


def _parse(text: str) -> Any:
    if text[:1] in ("[", "{"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _dotted(path: Path | list[str | int]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def explain(overrides: list[Override]) -> str:
    """What `compile --check --explain-env` prints: each override and what it replaced."""
    lines = [
        "Environment overrides: GATEWAY_<KEY>__<KEY>... sets that key (docs/providers.md#environment).",
    ]
    if not overrides:
        lines.append("  (none set)")
    for o in overrides:
        was = f"was {json.dumps(o.previous)} at {o.previous_at}" if o.previous is not None else "was unset"
        lines.append(f"  {o.variable} -> {_dotted(o.path)} = {json.dumps(o.value)} ({was})")
    return "\n".join(lines)
