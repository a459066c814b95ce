"""The IR: an immutable, typed graph of the gateway, compiled from configuration.

Nodes are entrypoints, routers (HTTP, TCP, UDP), middlewares, services, scalers and proxies.
Each node has a stable id, `"<kind>:<name>"`, and a fingerprint: a hash of its kind and its
validated config (never of its source position), so moving a block within a file or into
another file changes nothing, while changing any value changes exactly that node. Hot reload
diffs two graphs by id and fingerprint (`compiler/diff.py`).

Edges name every reference: router to entrypoint, router to each middleware (in order), router to
service, service to mirror / failover / revision target services, service to its scaler and proxy.

`IRGraph.to_json()` is deterministic (sorted nodes, edges and keys), so `compile --emit ir` output
is byte-identical across runs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, SerializeAsAny

from .model import ConfigModel, redacted_dump
from .source import Span

_T = TypeVar("_T")

NodeKind = Literal[
    "entrypoint", "router", "tcp_router", "udp_router", "middleware", "service", "scaler", "proxy"
]
NODE_KINDS: tuple[NodeKind, ...] = (
    "entrypoint", "router", "tcp_router", "udp_router", "middleware", "service", "scaler", "proxy",
)  # fmt: skip


class SourceSpan(BaseModel):
    model_config = ConfigDict(frozen=True)
    file: str
    line: int
    col: int

    @classmethod
    def of(cls, span: Span | None) -> SourceSpan | None:
        return None if span is None else cls(file=span.file, line=span.line, col=span.col)

    def to_span(self) -> Span:
        return Span(self.file, self.line, self.col)


def node_id(kind: NodeKind, name: str) -> str:
    return f"{kind}:{name}"


# `json.dumps(..., sort_keys=True, separators=(",", ":"), default=str)`, the encoder made once:
# json.dumps builds a new one per call when given options, and a large compile asks for a
# fingerprint per node (10,000 routers: 10,000 encoders).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def fingerprint(kind: str, payload: Any) -> str:
    """A short stable hash of a node's kind and canonical JSON config."""
    return hashlib.sha256(_CANONICAL.encode([kind, payload]).encode()).hexdigest()[:16]


def node_fingerprint(kind: str, config: ConfigModel, attrs: dict[str, Any]) -> str:
    """`fingerprint` of a node's kind, config and attrs.

    A config whose model holds no map at any depth serialises in one order, its fields' (two
    equal configs give the same text): pydantic writes its JSON at once, without the dump to
    Python values and the sorting encoder over them, which were most of a router's node. Its
    model's name is hashed too, as the sorted form's keys would tell two models apart. Other
    configs (headers, options: maps whose order the text sets) go through the sorted form.
    """
    model = type(config)
    if not _in_field_order(model):
        return fingerprint(kind, {"config": config.model_dump(mode="json"), "attrs": attrs})
    text = config.__pydantic_serializer__.to_json(config).decode()
    head = f"{kind}\0{model.__module__}.{model.__qualname__}\0"
    return hashlib.sha256((head + text + "\0" + _CANONICAL.encode(attrs)).encode()).hexdigest()[:16]


@functools.cache
def _in_field_order(model: type[BaseModel]) -> bool:
    """Whether `model`'s JSON is the same text for equal values: no map, set or free-form value
    at any depth, no custom serialiser, no extra keys."""
    decorators = model.__pydantic_decorators__
    if decorators.field_serializers or decorators.model_serializers or model.model_computed_fields:
        return False
    if model.model_config.get("extra") == "allow":
        return False
    return all(_ordered_type(field.annotation) for field in model.model_fields.values())


def _ordered_type(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _ordered_type(args[0])
    if origin is typing.Literal:
        return True
    if origin in (list, tuple, typing.Union, types.UnionType):
        return all(_ordered_type(a) for a in args if a is not Ellipsis)
    if origin is not None:
        return False  # dict, set, frozenset, Mapping ...
    if annotation in (str, int, float, bool, type(None)):
        return True
    return isinstance(annotation, type) and issubclass(annotation, BaseModel) and _in_field_order(annotation)


class Node(BaseModel):
    """One node of the graph.

    `config` is the validated config model of the node (for a middleware, the model registered by
    its kind). `attrs` holds what lowering derived (a router's effective priority, a middleware's
    type name, a proxy's service): everything the runtime needs that is not config text.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    id: str
    kind: NodeKind
    name: str
    config: SerializeAsAny[ConfigModel]
    attrs: dict[str, Any] = {}
    span: SourceSpan | None = None
    fingerprint: str = ""

    @classmethod
    def build(
        cls,
        kind: NodeKind,
        name: str,
        config: ConfigModel,
        attrs: dict[str, Any] | None = None,
        span: Span | None = None,
    ) -> Node:
        attrs = attrs or {}
        return cls(
            id=node_id(kind, name),
            kind=kind,
            name=name,
            config=config,
            attrs=attrs,
            span=SourceSpan.of(span),
            fingerprint=node_fingerprint(kind, config, attrs),
        )


class Edge(BaseModel):
    model_config = ConfigDict(frozen=True)
    src: str
    dst: str
    label: str


class IRGraph(BaseModel):
    """The whole compiled gateway. `settings` holds gateway-wide options (drain timeout, ...)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    settings: SerializeAsAny[ConfigModel]
    sources: tuple[str, ...] = ()

    def node(self, node_id_: str) -> Node | None:
        return self._index().get(node_id_)

    def by_kind(self, kind: NodeKind) -> list[Node]:
        return [n for n in self.nodes if n.kind == kind]

    def edges_from(self, src: str, label: str | None = None) -> list[Edge]:
        edges = self._derived("_edges_by_src", self._edges_by_src).get(src, [])
        return [e for e in edges if label is None or e.label == label]

    def _index(self) -> dict[str, Node]:
        return self._derived("_node_index", lambda: {n.id: n for n in self.nodes})

    def _edges_by_src(self) -> dict[str, list[Edge]]:
        """Edges grouped by source, in graph order: a graph building its routers asks for each
        router's edges, and a scan of every edge per router is quadratic (10,000 routers: 30,000
        edges scanned 10,000 times, half a minute)."""
        grouped: dict[str, list[Edge]] = {}
        for edge in self.edges:
            grouped.setdefault(edge.src, []).append(edge)
        return grouped

    def _derived(self, key: str, make: Callable[[], _T]) -> _T:
        cached: _T | None = self.__dict__.get(key)
        if cached is None:
            cached = make()
            # Frozen model: a derived cache, stored outside pydantic's fields.
            object.__setattr__(self, "__dict__", {**self.__dict__, key: cached})
        return cached

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, nodes by id, edges by (src, label, dst). Spans included."""
        doc = {
            "version": 1,
            "sources": list(self.sources),
            "settings": self.settings.model_dump(mode="json"),
            "nodes": [
                {
                    "id": n.id,
                    "kind": n.kind,
                    "name": n.name,
                    "fingerprint": n.fingerprint,
                    "config": redacted_dump(n.config),
                    "attrs": n.attrs,
                    "span": n.span.model_dump() if n.span else None,
                }
                for n in sorted(self.nodes, key=lambda n: n.id)
            ],
            "edges": [e.model_dump() for e in sorted(self.edges, key=lambda e: (e.src, e.label, e.dst))],
        }
        return json.dumps(doc, sort_keys=True, indent=2)
