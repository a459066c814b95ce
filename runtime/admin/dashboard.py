"""dashboard@internal: the web dashboard, static files shipped inside the package.

    GET /dashboard            302 to /dashboard/ (relative links need the trailing slash)
    GET /dashboard/           index.html
    GET /dashboard/<file>     one of the files in `static/` (package data), else 404

The pages are plain HTML, CSS and JavaScript with no build step and nothing fetched from a CDN;
the script reads the admin JSON API (`/api/gateway/...`, which must be served on the same
address, as the `api` block does) and draws its charts and the graph itself, in SVG. Every
answer carries a strict Content-Security-Policy: only this origin's scripts, styles and API, no
inline script or style, no framing. The files are read once, when the first generation that
routes to the dashboard is built, and kept in memory (a few tens of KiB).
"""

from __future__ import annotations

import functools
import hashlib
from importlib import resources

from ..api import Headers, Request, Response, iter_body
from .responses import method_not_allowed, not_found

__all__ = ["CSP", "PREFIX", "DashboardService", "static_files"]

PREFIX = "/dashboard"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
_SECURITY = (
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
)


@functools.cache
def static_files() -> dict[str, tuple[bytes, str, str]]:
    """name -> (content, content type, ETag) of every file the dashboard serves."""
    out: dict[str, tuple[bytes, str, str]] = {}
    for entry in resources.files(__package__).joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in TYPES:
            data = entry.read_bytes()
            out[entry.name] = (data, TYPES[suffix], '"' + hashlib.sha256(data).hexdigest()[:16] + '"')
    return out


class DashboardService:
    """The handler of `dashboard@internal`."""

    def __init__(self) -> None:
        self.files = static_files()

    async def __call__(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return method_not_allowed(request, ("GET", "HEAD"))
        path = request.path
        if path == PREFIX:
            query = f"?{request.query}" if request.query else ""
            return _answer(302, b"", "text/plain; charset=utf-8", [("location", f"{PREFIX}/{query}")])
        if not path.startswith(PREFIX + "/"):
            return not_found(request)
        name = path[len(PREFIX) + 1 :] or "index.html"
        found = self.files.get(name)
        if found is None:
            return not_found(request)
        data, content_type, etag = found
        if etag in (request.headers.get_joined("if-none-match") or ""):
            return _answer(304, b"", content_type, [("etag", etag)])
        return _answer(200, data, content_type, [("etag", etag)])


def _answer(status: int, data: bytes, content_type: str, extra: list[tuple[str, str]]) -> Response:
    headers = Headers.from_pairs([*_SECURITY, *extra, ("cache-control", "no-cache")])
    if status != 304:
        headers.set("content-type", content_type)
        headers.set("content-length", str(len(data)))
    return Response(status, headers, iter_body(data), generated=True)
