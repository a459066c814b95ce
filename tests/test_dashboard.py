"""dashboard@internal over real sockets: the redirect, the files and their types, 404s, the CSP,
the api block's middlewares in front, and the files inside a built wheel."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import bcrypt
import httpx
import pytest

from a3s_gateway.runtime.admin.dashboard import CSP, static_files
from a3s_gateway.runtime.gateway import Gateway

from .stubs import free_ports

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "dash-secret"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


def config(web: int, admin: int) -> str:
    return f"""
entrypoints "web" {{ address = "127.0.0.1:{web}" }}

middlewares "admin-auth" {{
  type  = "basic-auth"
  users = ["admin:{HASH}"]
}}

routers "chat" {{
  rule    = "PathPrefix(`/v1`)"
  service = "llm"
}}

services "llm" {{
  load_balancer {{ servers = [{{ url = "demo://llm" }}] }}
}}

api {{
  address     = "127.0.0.1:{admin}"
  dashboard   = true
  middlewares = ["admin-auth"]
}}
"""


@asynccontextmanager
async def dashboard(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    (web, admin), path = free_ports(2), tmp_path / "gw.hcl"
    path.write_text(config(web, admin))
    async with (
        Gateway(str(path)),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{admin}", auth=("admin", PASSWORD)) as client,
    ):
        yield client


async def test_files_types_redirect_and_404(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as client:
        redirect = await client.get("/dashboard?x=1")
        assert redirect.status_code == 302 and redirect.headers["location"] == "/dashboard/?x=1"

        index = await client.get("/dashboard/")
        assert index.status_code == 200 and index.headers["content-type"] == "text/html; charset=utf-8"
        assert '<script type="module" src="app.js">' in index.text
        assert index.headers["content-security-policy"] == CSP
        assert "script-src 'self';" in CSP and "unsafe-inline" not in CSP and "frame-ancestors 'none'" in CSP
        assert index.headers["x-content-type-options"] == "nosniff"

        types = {
            "app.js": "text/javascript; charset=utf-8",
            "dashboard.css": "text/css; charset=utf-8",
            "icon.svg": "image/svg+xml",
            "index.html": "text/html; charset=utf-8",
        }
        for name, content_type in types.items():
            answer = await client.get(f"/dashboard/{name}")
            assert answer.status_code == 200 and answer.headers["content-type"] == content_type, name
            assert answer.content == static_files()[name][0]
        # Every module the page imports is served (no CDN, no build step).
        for name in ("dom.js", "chart.js", "graph.js"):
            assert (await client.get(f"/dashboard/{name}")).status_code == 200

        etag = index.headers["etag"]
        again = await client.get("/dashboard/", headers={"if-none-match": etag})
        assert again.status_code == 304 and again.content == b""

        for missing in ("/dashboard/nope.js", "/dashboard/%2e%2e/pyproject.toml", "/dashboard/static/app.js"):
            gone = await client.get(missing)
            assert gone.status_code == 404 and gone.json()["error"]["type"] in ("not_found", "no_route"), (
                missing
            )
        post = await client.post("/dashboard/")
        assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"
        head = await client.head("/dashboard/app.js")
        assert head.status_code == 200 and head.content == b""


async def test_the_api_block_middlewares_protect_it(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as client:
        anonymous = await client.get("/dashboard/", auth=None)
        assert anonymous.status_code == 401
        token = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
        assert (
            await client.get("/dashboard/", headers={"authorization": f"Basic {token}"})
        ).status_code == 200


def test_a_built_wheel_ships_the_dashboard(tmp_path: Path) -> None:
    # Built from a copy: setuptools writes a build/ directory beside the sources.
    source = tmp_path / "source"
    for name in ("compiler", "runtime", "stdlib"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("a3s_gateway-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {name.rpartition("/")[2] for name in names if "/runtime/admin/static/" in name}
    assert shipped == set(static_files()) and "index.html" in shipped
