"""Just enough YAML to read a kubeconfig, and the connection it (or the pod) describes.

Shared by what talks to a Kubernetes API server: the `kubernetes` executor and provider.

kubeconfig files are written by kubectl and cloud CLIs in plain block style: mappings,
sequences (often at the same indentation as their key), plain and quoted scalars, `{}`/`[]`,
comments, flat `[a, b]` and `{k: v}`. `load_yaml` reads that subset (JSON is a subset too and is tried first); anything
fancier (anchors, multi-line scalars, tags) raises ValueError with the line number rather than
being misread. No dependency on PyYAML.
"""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "KubeConnection",
    "api_client",
    "auth_headers",
    "from_kubeconfig",
    "in_cluster",
    "load_yaml",
    "resolve_connection",
    "tls_context",
]

_Line = tuple[int, str, int]  # indent, text, line number


def load_yaml(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    lines: list[_Line] = []
    for number, raw in enumerate(text.splitlines(), 1):
        body = _strip_comment(raw).rstrip()
        if not body.strip() or body.strip() in ("---", "..."):
            continue
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ValueError(f"line {number}: tabs are not allowed for indentation")
        lines.append((len(body) - len(body.lstrip(" ")), body.strip(), number))
    if not lines:
        return None
    value, end = _block(lines, 0, lines[0][0])
    if end != len(lines):
        raise ValueError(f"line {lines[end][2]}: unexpected indentation")
    return value


def _strip_comment(line: str) -> str:
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def _is_item(text: str) -> bool:
    return text == "-" or text.startswith("- ")


def _block(lines: list[_Line], i: int, indent: int) -> tuple[Any, int]:
    return _sequence(lines, i, indent) if _is_item(lines[i][1]) else _mapping(lines, i, indent)


def _sequence(lines: list[_Line], i: int, indent: int) -> tuple[list[Any], int]:
    out: list[Any] = []
    while i < len(lines) and lines[i][0] == indent and _is_item(lines[i][1]):
        _, text, number = lines[i]
        rest = text[1:].lstrip()
        if not rest:
            if i + 1 < len(lines) and lines[i + 1][0] > indent:
                value, i = _block(lines, i + 1, lines[i + 1][0])
            else:
                value, i = None, i + 1
        elif _split_key(rest) is not None:
            # "- key: value" opens a mapping whose keys line up with "key".
            inner = indent + len(text) - len(rest)
            value, i = _mapping([*lines[:i], (inner, rest, number), *lines[i + 1 :]], i, inner)
        else:
            value, i = _scalar(rest, number), i + 1
        out.append(value)
    return out, i


def _mapping(lines: list[_Line], i: int, indent: int) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    while i < len(lines) and lines[i][0] == indent and not _is_item(lines[i][1]):
        _, text, number = lines[i]
        pair = _split_key(text)
        if pair is None:
            raise ValueError(f"line {number}: expected 'key: value'")
        key, rest = pair
        i += 1
        if rest:
            out[key] = _scalar(rest, number)
        elif i < len(lines) and (lines[i][0] > indent or (lines[i][0] == indent and _is_item(lines[i][1]))):
            out[key], i = _block(lines, i, lines[i][0])
        else:
            out[key] = None
    return out, i


_KEY = re.compile(r"""^("(?:[^"\\]|\\.)*"|'[^']*'|[^'"\s][^:]*?)\s*:(?:\s+(.*)|$)""")


def _split_key(text: str) -> tuple[str, str] | None:
    match = _KEY.match(text)
    if match is None:
        return None
    key = match.group(1).strip()
    if key[:1] in "'\"":
        key = str(_scalar(key, 0))
    return key, (match.group(2) or "").strip()


def _scalar(text: str, number: int) -> Any:
    if text[:1] in "&*!|>":
        raise ValueError(f"line {number}: YAML feature not supported in kubeconfig: {text[:20]!r}")
    if text.startswith('"'):
        return json.loads(text)
    if text.startswith("'"):
        if not text.endswith("'") or len(text) < 2:
            raise ValueError(f"line {number}: unterminated quoted string")
        return text[1:-1].replace("''", "'")
    if text.startswith(("[", "{")):
        return _flow(text, number)
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "~"):
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


def _flow(text: str, number: int) -> Any:
    """Flat `[a, b]` and `{k: v}` only (no nesting, no commas inside values)."""
    inner = text[1:-1].strip()
    closing = "]" if text.startswith("[") else "}"
    if not text.endswith(closing) or any(ch in inner for ch in "[]{}"):
        raise ValueError(f"line {number}: nested flow collections are not supported in kubeconfig")
    parts = [part.strip() for part in inner.split(",") if part.strip()]
    if closing == "]":
        return [_scalar(part, number) for part in parts]
    out: dict[str, Any] = {}
    for part in parts:
        pair = _split_key(part)
        if pair is None:
            raise ValueError(f"line {number}: expected 'key: value' in {text!r}")
        out[pair[0]] = _scalar(pair[1], number) if pair[1] else None
    return out


# --------------------------------------------------------------------------- connections

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class KubeConnection:
    """Where the API server is and how to authenticate to it."""

    server: str
    namespace: str = "default"
    token: str | None = None
    token_file: str | None = None
    ca_file: str | None = None
    ca_data: str | None = None  # PEM text
    client_cert_file: str | None = None
    client_key_file: str | None = None
    client_cert_data: str | None = None  # PEM text
    client_key_data: str | None = None
    insecure: bool = False
    username: str | None = None
    password: str | None = None

    def bearer(self) -> str | None:
        """The token, re-read from its file each time (service-account tokens rotate)."""
        if self.token_file:
            return Path(self.token_file).read_text().strip()
        return self.token


def in_cluster(env: dict[str, str], directory: Path = SERVICE_ACCOUNT_DIR) -> KubeConnection | None:
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
    token = directory / "token"
    if not host or not token.exists():
        return None
    namespace_file = directory / "namespace"
    namespace = namespace_file.read_text().strip() if namespace_file.exists() else "default"
    ca = directory / "ca.crt"
    host = f"[{host}]" if ":" in host else host
    return KubeConnection(
        server=f"https://{host}:{port}", namespace=namespace, token_file=str(token),
        ca_file=str(ca) if ca.exists() else None,
    )  # fmt: skip


def _b64(value: Any) -> str | None:
    return base64.b64decode(value).decode() if isinstance(value, str) and value else None


def _named(items: Any, name: str, what: str) -> dict[str, Any]:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name:
            body = item.get(what)
            return body if isinstance(body, dict) else {}
    raise ValueError(f"kubeconfig has no {what} named {name!r}")


def from_kubeconfig(path: str, context: str | None = None) -> KubeConnection:
    """The connection of `context` (default: current-context) in the kubeconfig at `path`."""
    doc = load_yaml(Path(path).read_text())
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a kubeconfig")
    name = context or doc.get("current-context")
    if not name:
        raise ValueError(f"{path}: no context given and no current-context")
    ctx = _named(doc.get("contexts"), name, "context")
    cluster = _named(doc.get("clusters"), str(ctx.get("cluster")), "cluster")
    user = _named(doc.get("users"), str(ctx.get("user")), "user") if ctx.get("user") else {}
    if "exec" in user or "auth-provider" in user:
        raise ValueError(f"{path}: exec and auth-provider credentials are not supported; use a token")
    base = os.path.dirname(os.path.abspath(path))

    def rel(value: Any) -> str | None:
        return os.path.join(base, value) if isinstance(value, str) and value else None

    server = cluster.get("server")
    if not isinstance(server, str):
        raise ValueError(f"{path}: cluster {ctx.get('cluster')!r} has no server")
    return KubeConnection(
        server=server.rstrip("/"),
        namespace=str(ctx.get("namespace") or "default"),
        token=user.get("token"),
        token_file=rel(user.get("tokenFile")),
        ca_file=rel(cluster.get("certificate-authority")),
        ca_data=_b64(cluster.get("certificate-authority-data")),
        client_cert_file=rel(user.get("client-certificate")),
        client_key_file=rel(user.get("client-key")),
        client_cert_data=_b64(user.get("client-certificate-data")),
        client_key_data=_b64(user.get("client-key-data")),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        username=user.get("username"),
        password=user.get("password"),
    )


def resolve_connection(
    env: dict[str, str],
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    api_server: str | None = None,
    namespace: str | None = None,
) -> KubeConnection:
    """The pod's service account when in a cluster (unless `kubeconfig` is given); else the
    kubeconfig at `kubeconfig`, `$KUBECONFIG` or `~/.kube/config`. `api_server` and `namespace`
    override what was found."""
    conn = None if kubeconfig else in_cluster(env)
    if conn is None:
        path = kubeconfig or (env.get("KUBECONFIG") or "").split(os.pathsep)[0]
        path = path or os.path.join(env.get("HOME", os.path.expanduser("~")), ".kube", "config")
        conn = from_kubeconfig(path, context)
    overrides: dict[str, Any] = {}
    if api_server:
        overrides["server"] = api_server.rstrip("/")
    if namespace:
        overrides["namespace"] = namespace
    return conn if not overrides else KubeConnection(**{**conn.__dict__, **overrides})


def tls_context(conn: KubeConnection) -> ssl.SSLContext | bool:
    """httpx's `verify` for the connection: its CA and client certificate."""
    if not conn.server.startswith("https://"):
        return True
    if conn.insecure:
        return False
    ctx = ssl.create_default_context(cafile=conn.ca_file, cadata=conn.ca_data)
    if conn.client_cert_file:
        ctx.load_cert_chain(conn.client_cert_file, conn.client_key_file)
    elif conn.client_cert_data:
        # ssl loads certificates from files only: write them to private temporary files.
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            for path, data in ((cert, conn.client_cert_data), (key, conn.client_key_data or "")):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(data)
            ctx.load_cert_chain(cert, key if conn.client_key_data else None)
    return ctx


def api_client(conn: KubeConnection, timeout: float) -> httpx.AsyncClient:
    """An HTTP client for the API server: its URL, TLS and basic credentials (a bearer token goes
    in each request's headers, `auth_headers`, since it may rotate)."""
    auth = httpx.BasicAuth(conn.username, conn.password) if conn.username and conn.password else None
    return httpx.AsyncClient(
        base_url=conn.server, verify=tls_context(conn), auth=auth, timeout=timeout, trust_env=False
    )


def auth_headers(conn: KubeConnection, **extra: str) -> dict[str, str]:
    """The bearer token (re-read: service-account tokens rotate), JSON, and `extra`."""
    token = conn.bearer()
    return {**({"authorization": f"Bearer {token}"} if token else {}), "accept": "application/json", **extra}
