"""basic-auth: A3S single user, htpasswd bcrypt lines and files, cache, header forwarding."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from pydantic import ValidationError

from a3s_gateway.runtime.api import Headers, Request, Response
from a3s_gateway.runtime.clock import ManualClock
from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.common.auth import Unauthorized
from a3s_gateway.stdlib.middlewares.basic_auth import BasicAuth, BasicAuthConfig, parse_user_line

pytestmark = pytest.mark.anyio


def htpasswd_b(user: str, password: str) -> str:
    """What `htpasswd -nbB user password` prints (cost 4 keeps the tests fast)."""
    hashed = bcrypt.hashpw(password.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    return f"{user}:" + hashed.replace("$2b$", "$2y$", 1)


ALICE = htpasswd_b("alice", "wonderland")
BOB = htpasswd_b("bob", "builder")


class Backend:
    def __init__(self) -> None:
        self.seen: list[Request] = []

    async def __call__(self, request: Request) -> Response:
        self.seen.append(request)
        return Response.text(200, "ok")


def build(clock: ManualClock | None = None, **options: Any) -> BasicAuth:
    ctx = BuildContext(node_id="middleware:auth", name="auth", clock=clock or ManualClock())
    config = BasicAuthConfig.model_validate(options)
    return BasicAuth(config, BasicAuth.new_state(config, ctx), ctx)


def basic(user: str, password: str, *extra: tuple[str, str]) -> Request:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return Request("GET", "/", Headers.from_pairs([("authorization", f"Basic {token}"), *extra]))


async def refused(mw: BasicAuth, request: Request) -> Unauthorized:
    backend = Backend()
    with pytest.raises(Unauthorized) as error:
        await mw(request, backend)
    assert backend.seen == []
    assert dict(error.value.headers)["www-authenticate"] == f'Basic realm="{mw.config.realm}"'
    return error.value


async def test_a3s_single_user() -> None:
    mw, backend = build(username="admin", password="secret"), Backend()
    assert (await mw(basic("admin", "secret"), backend)).status == 200
    assert backend.seen[0].state["basic_auth_user"] == "admin"
    assert backend.seen[0].headers.get("authorization", "").startswith("Basic ")  # kept by default
    await refused(mw, basic("admin", "wrong"))
    await refused(mw, basic("root", "secret"))


async def test_htpasswd_bcrypt_users() -> None:
    mw = build(users=[ALICE, BOB], realm="team")
    assert (await mw(basic("alice", "wonderland"), Backend())).status == 200
    assert (await mw(basic("bob", "builder"), Backend())).status == 200
    await refused(mw, basic("alice", "builder"))
    await refused(mw, basic("carol", "wonderland"))


async def test_unknown_user_costs_a_bcrypt_check() -> None:
    mw = build(users=[ALICE])
    await refused(mw, basic("mallory", "x"))
    assert mw.state.bcrypt_checks == 1


async def test_success_is_cached_until_ttl() -> None:
    clock = ManualClock()
    mw = build(clock, users=[ALICE], cache_ttl="60s")
    for _ in range(3):
        await mw(basic("alice", "wonderland"), Backend())
    assert mw.state.bcrypt_checks == 1
    await refused(mw, basic("alice", "wrong"))  # failures are never cached
    await refused(mw, basic("alice", "wrong"))
    assert mw.state.bcrypt_checks == 3
    clock.advance(61)
    await mw(basic("alice", "wonderland"), Backend())
    assert mw.state.bcrypt_checks == 4
    assert all(b"wonderland" not in key for key in mw.state.cache)  # keyed hashes only


async def test_header_field_and_remove_header() -> None:
    mw, backend = build(users=[ALICE], header_field="X-Auth-User", remove_header=True), Backend()
    await mw(basic("alice", "wonderland", ("x-auth-user", "root")), backend)
    forwarded = backend.seen[0].headers
    assert forwarded.get_all("x-auth-user") == ["alice"] and "authorization" not in forwarded


async def test_plain_entries(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(f"# users\n{ALICE}\ncarol:{{PLAIN}}pa:ss\ndave:cleartext\n")
    mw = build(users_file=str(path))
    assert (await mw(basic("carol", "pa:ss"), Backend())).status == 200  # ':' allowed in passwords
    assert (await mw(basic("dave", "cleartext"), Backend())).status == 200
    assert (await mw(basic("alice", "wonderland"), Backend())).status == 200
    await refused(mw, basic("dave", "Cleartext"))


async def test_long_passwords_are_cut_at_72_bytes_like_bcrypt() -> None:
    long = "p" * 80
    mw = build(users=[htpasswd_b("eve", long)])  # htpasswd hashes the first 72 bytes too
    assert (await mw(basic("eve", long), Backend())).status == 200
    assert (await mw(basic("eve", long[:72] + "other"), Backend())).status == 200


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer abc", "Basic", "Basic !!!notbase64", "Basic " + base64.b64encode(b"nocolon").decode()],
)
async def test_malformed_credentials(authorization: str | None) -> None:
    headers = Headers.from_pairs([("authorization", authorization)] if authorization else [])
    await refused(build(username="a", password="b"), Request("GET", "/", headers))


def test_parse_user_line() -> None:
    user, credential = parse_user_line(ALICE)
    assert (
        user == "alice" and credential.bcrypt_hash is not None and credential.bcrypt_hash.startswith(b"$2y$")
    )


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"username": "admin"},
        {"password": "x"},
        {"username": "a:b", "password": "x"},
        {"users": ["nocolon"]},
        {"users": ["apr:$apr1$abc$defghijklmnopqrstuvwx."]},
        {"users": ["sha:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="]},
        {"users": ["bad:$2y$10$short"]},
        {"users": [ALICE, ALICE.replace("alice:", "alice:", 1)]},
        {"username": "alice", "password": "x", "users": [ALICE]},
        {"users_file": "/nonexistent/htpasswd"},
        {"users": [ALICE], "header_field": "X User"},
        {"users": [ALICE], "realms": "typo"},
    ],
)
def test_config_errors_are_validation_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        BasicAuthConfig.model_validate(options)
