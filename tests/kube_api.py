"""A fake Kubernetes API server: list and watch over real HTTP, as the kubernetes provider uses them.

There is no Kubernetes API server on these machines, so the provider is tested against this one.
It implements what the API server's watch cache does, for any resource path:

- **list**: `GET /api/v1/services`, `/apis/<group>/<version>/namespaces/<ns>/<resource>`, with
  `labelSelector` (equality terms); the list's `metadata.resourceVersion` is the store's current
  revision, and each object carries the revision of its last change.
- **watch**: `?watch=1&resourceVersion=N&allowWatchBookmarks=true` streams, chunked, one JSON event
  a line (`ADDED`, `MODIFIED`, `DELETED`) for every change after N, then each change as it happens;
  `BOOKMARK` events (an object with only `metadata.resourceVersion`) when `bookmark()` is called;
  the stream ends after `timeoutSeconds`.
- **410 Gone**: after `compact()`, a watch from a revision older than the compaction gets one
  `ERROR` event with a `Status` of code 410 (reason `Expired`), as the real server answers, and
  is closed; the client must re-list.
- **faults**: `drop_watches()` cuts every open watch mid-stream (no last chunk); `stop()` and
  `start()` take the whole server down and up again on the same port, keeping its objects.
- bearer-token auth (401 otherwise).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .fake_server import FakeState
from .stubs import pick_port

__all__ = ["FakeKubeApi", "fake_kube_api"]

TOKEN = "kube-s3cret"
# The API path of each resource the provider watches (group/version, plural).
RESOURCES = {
    "services": "/api/v1",
    "secrets": "/api/v1",
    "endpointslices": "/apis/discovery.k8s.io/v1",
    "ingresses": "/apis/networking.k8s.io/v1",
    "ingressroutes": "/apis/traefik.io/v1alpha1",
    "middlewares": "/apis/traefik.io/v1alpha1",
    "tlsoptions": "/apis/traefik.io/v1alpha1",
}
_KINDS = {
    "services": "Service", "secrets": "Secret", "endpointslices": "EndpointSlice", "ingresses": "Ingress",
    "ingressroutes": "IngressRoute", "middlewares": "Middleware", "tlsoptions": "TLSOption",
}  # fmt: skip


class FakeKubeApi(FakeState):
    def __init__(self) -> None:
        super().__init__()
        self.revision = 100
        self.compacted = 0
        # resource -> (namespace, name) -> object
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {r: {} for r in RESOURCES}
        self.events: list[tuple[int, str, str, dict[str, Any]]] = []  # (rv, resource, type, object)
        self.bookmarks = 0  # bumped by bookmark(): open watches each send one
        self.port = pick_port()
        self._server: ThreadingHTTPServer | None = None

    # -- the store ------------------------------------------------------------------------------

    def apply(self, resource: str, obj: dict[str, Any]) -> None:
        """Create or replace an object (kubectl apply)."""
        meta = obj["metadata"]
        key = (meta.get("namespace", "default"), meta["name"])
        with self.lock:
            self.revision += 1
            stored = json.loads(json.dumps(obj))
            stored["metadata"] = {**meta, "namespace": key[0], "resourceVersion": str(self.revision)}
            kind = "MODIFIED" if key in self.objects[resource] else "ADDED"
            self.objects[resource][key] = stored
            self.events.append((self.revision, resource, kind, stored))
            self.lock.notify_all()

    def delete(self, resource: str, namespace: str, name: str) -> None:
        with self.lock:
            stored = self.objects[resource].pop((namespace, name))
            self.revision += 1
            gone = {**stored, "metadata": {**stored["metadata"], "resourceVersion": str(self.revision)}}
            self.events.append((self.revision, resource, "DELETED", gone))
            self.lock.notify_all()

    def compact(self) -> None:
        """Forget the history: a watch from an older revision now gets 410 Gone."""
        with self.lock:
            self.compacted = self.revision
            self.events.clear()
            self.lock.notify_all()

    def bookmark(self) -> None:
        with self.lock:
            self.bookmarks += 1
            self.lock.notify_all()

    def drop_watches(self) -> None:
        self.cut_streams()

    # -- the server -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        fake = self

        class Handler(_Handler):
            api = fake

        for _ in range(100):  # the port may linger a moment after stop()
            try:
                server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler, bind_and_activate=False)
                server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                server.server_bind()
                server.server_activate()
                break
            except OSError:
                server.server_close()
                time.sleep(0.05)
        else:
            raise RuntimeError(f"port {self.port} stayed busy")
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        """The API server goes away: the listener closes and every watch is cut."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        self.drop_watches()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api: FakeKubeApi

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.headers.get("authorization") != f"Bearer {TOKEN}":
            return self._json(401, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 401,
                                    "reason": "Unauthorized", "message": "Unauthorized"})  # fmt: skip
        parts = urlsplit(self.path)
        found = _route(parts.path)
        if found is None:
            return self._json(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                                    "reason": "NotFound", "message": f"{parts.path} not found"})  # fmt: skip
        resource, namespace = found
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        selector = _selector(query.get("labelSelector", ""))
        if query.get("watch") in ("1", "true"):
            self._watch(resource, namespace, selector, query)
        else:
            self._list(resource, namespace, selector)

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _list(self, resource: str, namespace: str | None, selector: dict[str, str]) -> None:
        api = self.api
        with api.lock:
            api.requests.append(f"LIST {resource} ns={namespace or '*'}")
            items = [o for (ns, _), o in sorted(api.objects[resource].items())
                     if (namespace is None or ns == namespace) and _matches(o, selector)]  # fmt: skip
            revision = api.revision
        kind = _KINDS[resource] + "List"
        api_version = RESOURCES[resource].removeprefix("/api/").removeprefix("/apis/")
        self._json(200, {"kind": kind, "apiVersion": api_version,
                         "metadata": {"resourceVersion": str(revision)}, "items": items})  # fmt: skip

    def _watch(
        self, resource: str, namespace: str | None, selector: dict[str, str], query: dict[str, str]
    ) -> None:
        api = self.api
        since = int(query.get("resourceVersion") or 0)
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
        bookmarks = query.get("allowWatchBookmarks") == "true"
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        with api.lock:
            api.requests.append(f"WATCH {resource} {since} ns={namespace or '*'}")
            generation, marks = api.generation, api.bookmarks
            if since and since < api.compacted:
                status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                          "message": f"too old resource version: {since} ({api.compacted})",
                          "reason": "Expired", "code": 410}  # fmt: skip
                self._chunk({"type": "ERROR", "object": status})
                self._end()
                return
        sent = since
        while True:
            with api.lock:
                while True:
                    pending = [e for e in api.events if e[0] > sent and e[1] == resource]
                    if pending or api.generation != generation or (bookmarks and api.bookmarks != marks):
                        break
                    if time.monotonic() >= deadline:
                        break
                    api.lock.wait(0.1)
                if api.generation != generation:  # dropped: close without the last chunk
                    self.close_connection = True
                    return
                if time.monotonic() >= deadline and not pending:
                    self._end()
                    return
                mark = bookmarks and api.bookmarks != marks
                marks, revision = api.bookmarks, api.revision
            for rv, _, kind, obj in pending:
                sent = rv
                ns = obj["metadata"].get("namespace")
                wanted = (namespace is None or ns == namespace) and _matches(obj, selector)
                if wanted and not self._chunk({"type": kind, "object": obj}):
                    return
            if mark:
                sent = max(sent, revision)
                body = {
                    "kind": _KINDS[resource],
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": str(revision)},
                }
                if not self._chunk({"type": "BOOKMARK", "object": body}):
                    return

    def _chunk(self, event: dict[str, Any]) -> bool:
        data = json.dumps(event).encode() + b"\n"
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        except OSError:
            return False
        return True

    def _end(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass


def _route(path: str) -> tuple[str, str | None] | None:
    """(resource, namespace or None) of a list/watch path."""
    for resource, prefix in RESOURCES.items():
        if path == f"{prefix}/{resource}":
            return resource, None
        head = f"{prefix}/namespaces/"
        if path.startswith(head) and path.endswith(f"/{resource}"):
            namespace = path[len(head) : -len(resource) - 1]
            if namespace and "/" not in namespace:
                return resource, namespace
    return None


def _selector(text: str) -> dict[str, str]:
    return dict(term.split("=", 1) for term in text.split(",") if "=" in term)


def _matches(obj: dict[str, Any], selector: dict[str, str]) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


@contextmanager
def fake_kube_api() -> Iterator[FakeKubeApi]:
    api = FakeKubeApi()
    api.start()
    try:
        yield api
    finally:
        api.stop()


def kubeconfig(path: str, server: str) -> str:
    """A kubeconfig file for the fake, with its token; returns the path."""
    with open(path, "w") as handle:
        handle.write(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
            f"clusters:\n- name: fake\n  cluster:\n    server: {server}\n"
            "contexts:\n- name: fake\n  context: {cluster: fake, user: gateway, namespace: default}\n"
            f"users:\n- name: gateway\n  user:\n    token: {TOKEN}\n"
        )
    return path
