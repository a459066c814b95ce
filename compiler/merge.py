"""Loading configuration: files and directories into one document tree with a span map.

`load_config` reads every file (a directory stands for its `*.hcl` files in name order), parses
each with `hcl.parse_hcl`, and merges the documents in that order into one plain tree:

- a block with a label is an entry in a map: `services "api" {...}` is
  `tree["services"]["api"]`; the same label twice, in one file or across files, is an error at
  the second definition naming the first;
- a top-level block without a label (`providers {...}`) may appear in several files; its
  contents merge, and a key set in two of them is an error naming both places;
- a nested block without a label is a dict when it appears once in its body and a list of
  dicts when it is repeated there;
- an attribute set twice in one body is an error.

Every key gets a `Span` in the `SpanMap`, so later passes (pydantic validation, reference
checks) can turn a key path such as `("services", "api", "load_balancer", "servers", 0, "url")`
back into `file:line:col`. Nothing here raises on bad input: problems go to `Diagnostics`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import file_provider
from .diagnostics import Diagnostics
from .hcl import Attribute, Block, Document, Item, Value, parse_hcl
from .source import SourceFile, Span

__all__ = ["LoadedConfig", "Path", "SpanMap", "load_config", "load_texts", "merge_documents"]

Path = tuple[str | int, ...]

_NOUNS = {
    "entrypoints": "entrypoint",
    "routers": "router",
    "tcp_routers": "TCP router",
    "udp_routers": "UDP router",
    "services": "service",
    "middlewares": "middleware",
    "revisions": "revision",
}


class SpanMap:
    """Where every key of the merged tree was written.

    `find(path)` is the span of the longest known prefix of `path`: the attribute's name, the
    block's first token, the list element or the object key. `value_span(path)` is where the
    value itself starts (the label, for a labelled block), falling back to `find`.
    """

    def __init__(self, spans: Mapping[Path, Span], value_spans: Mapping[Path, Span]) -> None:
        self._spans = dict(spans)
        self._values = dict(value_spans)

    def get(self, path: Sequence[str | int]) -> Span | None:
        """The span recorded for exactly `path`, or None."""
        return self._spans.get(tuple(path))

    def find(self, path: Sequence[str | int]) -> Span | None:
        key = tuple(path)
        for end in range(len(key), 0, -1):
            span = self._spans.get(key[:end])
            if span is not None:
                return span
        return None

    def value_span(self, path: Sequence[str | int]) -> Span | None:
        return self._values.get(tuple(path)) or self.find(path)

    def extended(self, spans: Mapping[Path, Span]) -> SpanMap:
        """This map with more keys, or keys given a new place (a provider's fragment, an
        environment override): their value spans are theirs too."""
        return SpanMap({**self._spans, **spans}, {k: v for k, v in self._values.items() if k not in spans})

    def overlaid(self, other: SpanMap, replaced: Iterable[Path]) -> SpanMap:
        """This map where each path of `replaced` (and everything under it) is `other`'s
        (an overlay file's value laid over the files', compiler/overlay.py)."""
        roots = list(replaced)

        def under(path: Path) -> bool:
            return any(path[: len(root)] == root for root in roots)

        spans = {p: s for p, s in self._spans.items() if not under(p)}
        values = {p: s for p, s in self._values.items() if not under(p)}
        spans.update({p: s for p, s in other._spans.items() if under(p)})
        values.update({p: s for p, s in other._values.items() if under(p)})
        return SpanMap(spans, values)

    def __contains__(self, path: object) -> bool:
        return path in self._spans

    def __iter__(self) -> Iterator[Path]:
        return iter(self._spans)

    def __len__(self) -> int:
        return len(self._spans)


@dataclass(frozen=True)
class LoadedConfig:
    tree: dict[str, Any]  # merged document
    spans: SpanMap  # where every key came from
    sources: dict[str, SourceFile]  # path -> text, for caret rendering


def load_config(paths: Sequence[str], env: Mapping[str, str], diags: Diagnostics) -> LoadedConfig:
    """Read, parse and merge `paths` (files, or directories of `*.hcl` files), then the files the
    file provider names (compiler/file_provider.py)."""
    merger = _Merger(diags)
    sources = _merge_files(merger, _expand(paths, diags), env, diags)
    provided = file_provider.provided_paths(merger.tree, SpanMap(merger.spans, merger.values), diags)
    if provided:
        seen = {os.path.realpath(p) for p in sources}
        more = [p for p in _expand(provided, diags) if os.path.realpath(p) not in seen]
        sources.update(_merge_files(merger, more, env, diags))
    return LoadedConfig(merger.tree, SpanMap(merger.spans, merger.values), sources)


def _merge_files(
    merger: _Merger, paths: Sequence[str], env: Mapping[str, str], diags: Diagnostics
) -> dict[str, SourceFile]:
    sources: dict[str, SourceFile] = {}
    for path in paths:
        text = _read(path, diags)
        if text is not None:
            sources[path] = source = SourceFile.from_text(path, text)
            document = parse_hcl(source, env, diags)
            if document is not None:
                merger.body(merger.tree, (), document.body, top=True)
    return sources


def load_texts(files: Mapping[str, str], env: Mapping[str, str], diags: Diagnostics) -> LoadedConfig:
    """Parse and merge already-read files, `{path: text}`, in the mapping's order."""
    sources = {path: SourceFile.from_text(path, text) for path, text in files.items()}
    documents = [doc for source in sources.values() if (doc := parse_hcl(source, env, diags)) is not None]
    tree, spans = merge_documents(documents, diags)
    return LoadedConfig(tree, spans, sources)


def merge_documents(documents: Iterable[Document], diags: Diagnostics) -> tuple[dict[str, Any], SpanMap]:
    merger = _Merger(diags)
    for document in documents:
        merger.body(merger.tree, (), document.body, top=True)
    return merger.tree, SpanMap(merger.spans, merger.values)


# -- reading files ----------------------------------------------------------------------------


def _expand(paths: Sequence[str], diags: Diagnostics) -> list[str]:
    """Files to read, in order: a directory's `*.hcl` files sorted by name; each file once."""
    files: list[str] = []
    seen: set[str] = set()
    for path in paths:
        if os.path.isdir(path):
            try:
                names = sorted(os.listdir(path))
            except OSError as exc:
                diags.error(f"cannot read directory {path}: {exc.strerror or exc}", code="io")
                continue
            found = [
                os.path.join(path, n)
                for n in names
                if n.endswith(".hcl") and not n.startswith(".") and os.path.isfile(os.path.join(path, n))
            ]
            if not found:
                diags.warning(f"directory {path} holds no *.hcl files", code="io")
        else:
            found = [path]
        for file in found:
            real = os.path.realpath(file)
            if real not in seen:
                seen.add(real)
                files.append(file)
    return files


def _read(path: str, diags: Diagnostics) -> str | None:
    if os.path.exists(path) and not os.path.isfile(path):  # a FIFO or device would block or never end
        diags.error(f"cannot read {path}: not a regular file", code="io")
        return None
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        diags.error(f"cannot read {path}: {exc.strerror or exc}", code="io")
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8", errors="replace")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        diags.error("the file is not valid UTF-8", Span(path, line, col), code="io")
        return None


# -- merging ----------------------------------------------------------------------------------


class _Merger:
    """Builds the tree; `owners` remembers what claimed each path, to name it on a clash."""

    def __init__(self, diags: Diagnostics) -> None:
        self.diags = diags
        self.tree: dict[str, Any] = {}
        self.spans: dict[Path, Span] = {}
        self.values: dict[Path, Span] = {}
        self.owners: dict[Path, str] = {}

    def body(self, target: dict[str, Any], path: Path, items: Sequence[Item], *, top: bool) -> None:
        counts = Counter(item.type for item in items if isinstance(item, Block) and not item.labels)
        lists: dict[str, list[Any]] = {}
        for item in items:
            if isinstance(item, Attribute):
                self.attribute(target, path, item)
            elif item.labels:
                self.labelled(target, path, item)
            elif top:
                self.merged(target, path, item)
            elif counts[item.type] > 1:
                self.repeated(target, path, item, lists)
            else:
                self.single(target, path, item)

    def claim(self, path: Path, kind: str, span: Span, what: str) -> bool:
        """Record `path` as defined at `span`; a clash with an earlier definition is an error.

        Two claims of the same shareable kind ("labels": a map of labelled blocks, "merged": a
        top-level unlabelled block) reuse the first; anything else is a duplicate.
        """
        if path not in self.owners:
            self.owners[path] = kind
            self.spans[path] = span
            return True
        if self.owners[path] == kind and kind in ("labels", "merged"):
            return True
        first = self.spans[path]
        hint = "names must be unique across all configuration files" if kind == "block" else None
        self.diags.error(f"{what} is already defined at {first}", span, hint=hint, code="duplicate")
        return False

    def attribute(self, target: dict[str, Any], path: Path, item: Attribute) -> None:
        key = (*path, item.name)
        if self.claim(key, "attribute", item.span, f"'{item.name}'"):
            target[item.name] = item.value.data
            self.values[key] = item.value.span
            self.entries(key, item.value)

    def entries(self, path: Path, value: Value) -> None:
        for entry in value.entries:
            key = (*path, entry.key)
            self.spans[key] = entry.span
            self.values[key] = entry.value.span
            self.entries(key, entry.value)

    def labelled(self, target: dict[str, Any], path: Path, item: Block) -> None:
        key: Path = (*path, item.type)
        container = target
        name = item.type
        for label in item.labels[:-1]:
            if not self.claim(key, "labels", item.span, f"'{name}'"):
                return
            container = container.setdefault(name, {})
            key, name = (*key, label), label
        if not self.claim(key, "labels", item.span, f"'{name}'"):
            return
        container = container.setdefault(name, {})
        label = item.labels[-1]
        noun = _NOUNS.get(item.type, f"'{item.type}' block")
        key = (*key, label)
        if self.claim(key, "block", item.span, f"{noun} '{'.'.join(item.labels)}'"):
            self.values[key] = item.label_spans[-1]
            body: dict[str, Any] = {}
            container[label] = body
            self.body(body, key, item.body, top=False)

    def merged(self, target: dict[str, Any], path: Path, item: Block) -> None:
        key = (*path, item.type)
        if self.claim(key, "merged", item.span, f"'{item.type}'"):
            self.body(target.setdefault(item.type, {}), key, item.body, top=False)

    def single(self, target: dict[str, Any], path: Path, item: Block) -> None:
        key = (*path, item.type)
        if self.claim(key, "block", item.span, f"'{item.type}'"):
            body: dict[str, Any] = {}
            target[item.type] = body
            self.body(body, key, item.body, top=False)

    def repeated(self, target: dict[str, Any], path: Path, item: Block, lists: dict[str, list[Any]]) -> None:
        key = (*path, item.type)
        if item.type not in lists:
            if not self.claim(key, "list", item.span, f"'{item.type}'"):
                return
            target[item.type] = lists[item.type] = []
        elements = lists[item.type]
        element_key = (*key, len(elements))
        self.spans[element_key] = item.span
        body: dict[str, Any] = {}
        elements.append(body)
        self.body(body, element_key, item.body, top=False)
