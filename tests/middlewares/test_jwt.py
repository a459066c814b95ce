"""jwt: HS/RS/ES/EdDSA verification, claims and leeway on a manual clock, alg confusion, JWKS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pydantic import ValidationError

from a3s_gateway.runtime.api import Headers, Request, Response
from a3s_gateway.runtime.clock import ManualClock
from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.common.auth import Unauthorized
from a3s_gateway.stdlib.common.jose import parse_jwks
from a3s_gateway.stdlib.middlewares.jwt import Jwt, JwtConfig

from .http_peer import PeerRequest, Reply, http_peer

pytestmark = pytest.mark.anyio

SECRET = "an-hmac-secret-long-enough-for-hs512-" + "x" * 40
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_KEY_2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def pem(private: Any) -> str:
    return str(
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


class Backend:
    def __init__(self) -> None:
        self.seen: list[Request] = []

    async def __call__(self, request: Request) -> Response:
        self.seen.append(request)
        return Response.text(200, "ok")


def build(clock: ManualClock | None = None, **options: Any) -> Jwt:
    ctx = BuildContext(node_id="middleware:auth", name="auth", clock=clock or ManualClock())
    config = JwtConfig.model_validate(options)
    return Jwt(config, Jwt.new_state(config, ctx), ctx)


def now(clock: ManualClock) -> int:
    return int(clock.wall())


def token(key: Any = SECRET, alg: str = "HS256", headers: dict[str, Any] | None = None, **claims: Any) -> str:
    claims.setdefault("exp", 1_700_000_000 + 3600)
    claims.setdefault("sub", "user-1")
    return pyjwt.encode(claims, key, algorithm=alg, headers=headers)


def bearer(value: str, *extra: tuple[str, str], target: str = "/v1/chat") -> Request:
    return Request("GET", target, Headers.from_pairs([("authorization", f"Bearer {value}"), *extra]))


async def rejected(mw: Jwt, request: Request) -> Unauthorized:
    backend = Backend()
    with pytest.raises(Unauthorized) as error:
        await mw(request, backend)
    assert backend.seen == [] and error.value.status == 401
    return error.value


def challenge_of(error: Unauthorized) -> str:
    return dict(error.headers)["www-authenticate"]


# ------------------------------------------------------------------ HS256 (A3S `value`)


async def test_valid_hs256_passes_with_claims_and_subject_header() -> None:
    mw, backend = build(value=SECRET), Backend()
    request = bearer(token(role="admin"), ("x-jwt-subject", "forged"))
    response = await mw(request, backend)
    assert response.status == 200
    forwarded = backend.seen[0]
    assert forwarded.state["jwt_claims"]["role"] == "admin"
    assert forwarded.headers.get_all("x-jwt-subject") == ["user-1"]
    assert forwarded.headers.get("authorization", "").startswith("Bearer ")


async def test_missing_token_challenge_has_no_error_code() -> None:
    error = await rejected(build(value=SECRET, realm="llm"), Request("GET", "/", Headers()))
    assert challenge_of(error) == 'Bearer realm="llm"'


async def test_wrong_secret_is_invalid_token() -> None:
    error = await rejected(build(value=SECRET), bearer(token(key="another-secret-of-32-bytes-or-more!!")))
    value = challenge_of(error)
    assert value.startswith('Bearer realm="a3s-gateway", error="invalid_token"')
    assert 'error_description="signature verification failed"' in value


async def test_malformed_token() -> None:
    error = await rejected(build(value=SECRET), bearer("not.a.jwt"))
    assert "malformed token" in challenge_of(error)


async def test_other_scheme_is_missing_token() -> None:
    request = Request("GET", "/", Headers.from_pairs([("authorization", "Basic dXNlcjpwdw==")]))
    error = await rejected(build(value=SECRET), request)
    assert "error=" not in challenge_of(error)


async def test_bare_token_is_accepted_as_a3s_does() -> None:
    backend = Backend()
    request = Request("GET", "/", Headers.from_pairs([("authorization", token())]))
    assert (await build(value=SECRET)(request, backend)).status == 200


# ------------------------------------------------------------------ time claims on a manual clock


async def test_expired_token_and_leeway() -> None:
    clock = ManualClock()
    expired = token(exp=now(clock) - 10)
    error = await rejected(build(clock, value=SECRET), bearer(expired))
    assert 'error_description="token expired"' in challenge_of(error)
    backend = Backend()
    assert (await build(clock, value=SECRET, leeway="30s")(bearer(expired), backend)).status == 200
    clock.advance(25)
    await rejected(build(clock, value=SECRET, leeway="30s"), bearer(expired))


async def test_not_before() -> None:
    clock = ManualClock()
    early = token(nbf=now(clock) + 60)
    error = await rejected(build(clock, value=SECRET), bearer(early))
    assert "not yet valid" in challenge_of(error)
    clock.advance(61)
    assert (await build(clock, value=SECRET)(bearer(early), Backend())).status == 200


async def test_exp_is_required_by_default() -> None:
    no_exp = pyjwt.encode({"sub": "u"}, SECRET, algorithm="HS256")
    error = await rejected(build(value=SECRET), bearer(no_exp))
    assert "missing claim exp" in challenge_of(error)
    assert (await build(value=SECRET, required_claims=[])(bearer(no_exp), Backend())).status == 200


async def test_non_numeric_exp_is_rejected() -> None:
    await rejected(build(value=SECRET), bearer(token(exp="tomorrow")))


# ------------------------------------------------------------------ iss / aud


async def test_audience() -> None:
    mw = build(value=SECRET, audience=["llm-api", "other"])
    assert (await mw(bearer(token(aud="llm-api")), Backend())).status == 200
    assert (await mw(bearer(token(aud=["x", "other"])), Backend())).status == 200
    error = await rejected(mw, bearer(token(aud="billing")))
    assert "audience not accepted" in challenge_of(error)
    await rejected(mw, bearer(token()))  # aud required once configured


async def test_audience_not_checked_when_not_configured() -> None:
    assert (await build(value=SECRET)(bearer(token(aud="anything")), Backend())).status == 200


async def test_issuer() -> None:
    mw = build(value=SECRET, issuer="https://idp.example.com/")
    assert (await mw(bearer(token(iss="https://idp.example.com/")), Backend())).status == 200
    error = await rejected(mw, bearer(token(iss="https://evil.example.com/")))
    assert "issuer not accepted" in challenge_of(error)


# ------------------------------------------------------------------ algorithms and key confusion


async def test_alg_none_is_refused() -> None:
    unsigned = pyjwt.encode({"sub": "u", "exp": 1_700_003_600}, None, algorithm="none")
    error = await rejected(build(value=SECRET), bearer(unsigned))
    assert "not allowed" in challenge_of(error)


def _hs256_signed_with(secret: bytes, claims: dict[str, Any]) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims).encode())
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


async def test_alg_confusion_public_key_as_hmac_secret() -> None:
    # The attacker signs an HS256 token with the (public) RSA key's PEM text as the secret.
    forged = _hs256_signed_with(pem(RSA_KEY).encode(), {"sub": "admin", "exp": 1_700_003_600})
    await rejected(build(public_key=pem(RSA_KEY)), bearer(forged))  # HS not allowed at all
    # Even when HS256 is allowed (with its own secret), the RSA key is never the HMAC key.
    mixed = build(public_key=pem(RSA_KEY), value=SECRET, algorithms=["RS256", "HS256"])
    error = await rejected(mixed, bearer(forged))
    assert "signature verification failed" in challenge_of(error)


async def test_algorithm_outside_allowlist() -> None:
    mw = build(value=SECRET, algorithms=["HS512"])
    error = await rejected(mw, bearer(token(alg="HS256")))
    assert "'HS256' is not allowed" in challenge_of(error)
    assert (await mw(bearer(token(alg="HS512")), Backend())).status == 200


@pytest.mark.parametrize(
    ("private", "alg"),
    [(RSA_KEY, "RS256"), (RSA_KEY, "PS256"), (RSA_KEY, "RS512"), (EC_KEY, "ES256"), (ED_KEY, "EdDSA")],
)
async def test_asymmetric_with_pem(private: Any, alg: str) -> None:
    mw = build(public_key=pem(private))
    assert (await mw(bearer(token(private, alg)), Backend())).status == 200
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048) if alg[0] in "RP" else None
    if other is not None:
        await rejected(mw, bearer(token(other, alg)))


async def test_rsa_key_cannot_verify_ec_token() -> None:
    await rejected(build(public_key=pem(RSA_KEY)), bearer(token(EC_KEY, "ES256")))


async def test_public_key_file(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_text(pem(EC_KEY))
    assert (await build(public_key_file=str(path))(bearer(token(EC_KEY, "ES256")), Backend())).status == 200


# ------------------------------------------------------------------ where the token comes from


async def test_cookie_and_query_param_sources() -> None:
    mw = build(value=SECRET, cookie="session", query_param="access_token", forward_token=False)
    backend = Backend()
    cookie = Request("GET", "/", Headers.from_pairs([("cookie", f"theme=dark; session={token()}")]))
    assert (await mw(cookie, backend)).status == 200
    query = Request("GET", f"/stream?a=1&access_token={token()}&b=%20x", Headers())
    assert (await mw(query, backend)).status == 200
    assert backend.seen[-1].target == "/stream?a=1&b=%20x"


async def test_forward_token_false_strips_the_header() -> None:
    backend = Backend()
    await build(value=SECRET, forward_token=False)(bearer(token()), backend)
    assert "authorization" not in backend.seen[0].headers


async def test_custom_header_and_scheme() -> None:
    mw = build(value=SECRET, header="X-Token", scheme="")
    request = Request("GET", "/", Headers.from_pairs([("x-token", token())]))
    assert (await mw(request, Backend())).status == 200


# ------------------------------------------------------------------ claims to headers


async def test_claims_to_headers_nested_lists_and_injection() -> None:
    mw = build(
        value=SECRET,
        claims_to_headers={"org.id": "X-Org", "roles": "X-Roles", "name": "X-Name", "absent": "X-Absent"},
    )
    backend = Backend()
    claims = {"org": {"id": 7}, "roles": ["a", "b"], "name": "Zoë\r\nX-Admin: 1"}
    await mw(bearer(token(**claims), ("x-absent", "forged")), backend)
    headers = backend.seen[0].headers
    assert headers.get("x-org") == "7" and headers.get("x-roles") == "a,b"
    assert "\r" not in (headers.get("x-name") or "") and "\n" not in (headers.get("x-name") or "")
    assert (headers.get("x-name") or "").encode("latin-1").decode() == "Zoë  X-Admin: 1"
    assert "x-absent" not in headers and "x-jwt-subject" not in headers


# ------------------------------------------------------------------ JWKS over real HTTP


@asynccontextmanager
async def jwks_server(document: dict[str, Any]) -> AsyncIterator[tuple[str, list[PeerRequest]]]:
    """Serves `document` (mutable: tests rotate keys) as JSON; yields the URL and the requests seen."""

    async def answer(_: PeerRequest) -> Reply:
        return 200, [("content-type", "application/json")], json.dumps(document).encode()

    async with http_peer(answer) as (port, seen):
        yield f"http://127.0.0.1:{port}/jwks.json", seen


def jwk(private: Any, kid: str, alg: str | None = None) -> dict[str, Any]:
    algorithm = pyjwt.algorithms.RSAAlgorithm if isinstance(private, rsa.RSAPrivateKey) else None
    if algorithm is None:
        data = json.loads(pyjwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    else:
        data = json.loads(algorithm.to_jwk(private.public_key()))
    data["kid"] = kid
    if alg:
        data["alg"] = alg
    return dict(data)


@asynccontextmanager
async def jwks_middleware(url: str, clock: ManualClock, **options: Any) -> AsyncIterator[Jwt]:
    mw = build(clock, jwks_url=url, **options)
    try:
        yield mw
    finally:
        await Jwt.close_state(mw.state)


async def test_jwks_is_cached_and_refreshed_on_unknown_kid() -> None:
    clock = ManualClock()
    document = {"keys": [jwk(RSA_KEY, "k1", "RS256"), jwk(EC_KEY, "k-ec")]}
    async with jwks_server(document) as (url, hits), jwks_middleware(url, clock) as mw:
        for _ in range(3):
            assert (await mw(bearer(token(RSA_KEY, "RS256", headers={"kid": "k1"})), Backend())).status == 200
        assert (await mw(bearer(token(EC_KEY, "ES256", headers={"kid": "k-ec"})), Backend())).status == 200
        assert [r["target"] for r in hits] == ["/jwks.json"]  # one fetch for all four
        # Key rotation: a token signed with a new kid makes the gateway fetch again.
        document["keys"] = [jwk(RSA_KEY_2, "k2", "RS256")]
        clock.advance(11)
        assert (await mw(bearer(token(RSA_KEY_2, "RS256", headers={"kid": "k2"})), Backend())).status == 200
        assert len(hits) == 2


async def test_jwks_refresh_is_rate_limited_for_unknown_kids() -> None:
    clock = ManualClock()
    async with jwks_server({"keys": [jwk(RSA_KEY, "k1")]}) as (url, hits), jwks_middleware(url, clock) as mw:
        forged = token(RSA_KEY_2, "RS256", headers={"kid": "nope"})
        for _ in range(5):
            error = await rejected(mw, bearer(forged))
        assert "no key matches" in challenge_of(error)
        assert len(hits) == 1
        clock.advance(10)
        await rejected(mw, bearer(forged))
        assert len(hits) == 2


async def test_jwks_ttl_expiry_refetches() -> None:
    clock = ManualClock()
    async with (
        jwks_server({"keys": [jwk(RSA_KEY, "k1")]}) as (url, hits),
        jwks_middleware(url, clock, jwks_cache_ttl="60s") as mw,
    ):
        good = bearer(token(RSA_KEY, "RS256", headers={"kid": "k1"}))
        await mw(good, Backend())
        clock.advance(30)
        await mw(bearer(token(RSA_KEY, "RS256", headers={"kid": "k1"})), Backend())
        assert len(hits) == 1
        clock.advance(31)
        await mw(bearer(token(RSA_KEY, "RS256", headers={"kid": "k1"})), Backend())
        assert len(hits) == 2


async def test_jwk_alg_binds_the_key() -> None:
    clock = ManualClock()
    async with (
        jwks_server({"keys": [jwk(RSA_KEY, "k1", "RS256")]}) as (url, _),
        jwks_middleware(url, clock) as mw,
    ):
        await rejected(mw, bearer(token(RSA_KEY, "PS256", headers={"kid": "k1"})))


async def test_unreachable_jwks_is_401_not_a_crash() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    async with jwks_middleware(f"http://127.0.0.1:{port}/jwks", ManualClock()) as mw:
        await rejected(mw, bearer(token(RSA_KEY, "RS256", headers={"kid": "k1"})))


def test_parse_jwks_skips_symmetric_and_encryption_keys() -> None:
    keys = parse_jwks(
        {
            "keys": [
                {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
                {**jwk(RSA_KEY, "enc"), "use": "enc"},
                {"kty": "RSA", "kid": "broken"},
                jwk(RSA_KEY, "sig"),
            ]
        }
    )
    assert [k.kid for k in keys] == ["sig"]
    with pytest.raises(ValueError):
        parse_jwks({"nokeys": []})


# ------------------------------------------------------------------ config errors at compile time


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"value": ""},
        {"value": SECRET, "algorithms": ["none"]},
        {"value": SECRET, "algorithms": ["HS1024"]},
        {"algorithms": ["HS256"], "public_key": pem(RSA_KEY)},
        {"public_key": pem(EC_KEY), "algorithms": ["RS256"]},
        {"public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"},
        {"public_key_file": "/nonexistent/key.pem"},
        {"public_key": pem(RSA_KEY), "public_key_file": "/x.pem"},
        {"value": pem(RSA_KEY)},
        {"jwks_url": "file:///etc/jwks.json"},
        {"value": SECRET, "leeway": "a while"},
        {"value": SECRET, "claims_to_headers": {"sub": "bad header"}},
        {"value": SECRET, "secret": "typo"},
    ],
)
def test_config_errors_are_validation_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        JwtConfig.model_validate(options)


def test_default_algorithms_follow_the_keys() -> None:
    assert JwtConfig(value=SECRET).allowed_algorithms() == ("HS256", "HS384", "HS512")
    assert JwtConfig(public_key=pem(EC_KEY)).allowed_algorithms() == ("ES256",)
    assert "EdDSA" in JwtConfig(jwks_url="https://idp/jwks").allowed_algorithms()
    assert "HS256" not in JwtConfig(jwks_url="https://idp/jwks").allowed_algorithms()
