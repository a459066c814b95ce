"""The `jwt` middleware's configuration (its implementation: middlewares/jwt.py)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from ....compiler.model import SECRET
from ...base import ConfigModel, Duration
from ...common.auth import read_text
from ...common.fields import as_list, check_field_name
from ...common.jose_keys import (
    ASYMMETRIC,
    HMAC_ALGORITHMS,
    SUPPORTED,
    key_algorithms,
    load_public_key,
)
from ...registry import declare


class JwtConfig(ConfigModel):
    value: str | None = Field(
        default=None, description="Shared secret for HS256/384/512 (A3S key).", json_schema_extra=SECRET
    )
    public_key: str | None = Field(default=None, description="PEM public key or certificate.")
    public_key_file: str | None = Field(default=None, description="File holding the PEM public key.")
    jwks_url: str | None = Field(default=None, description="JSON Web Key Set URL (http or https).")
    algorithms: list[str] = Field(
        default=[], description="Allowed algorithms (default: what the keys verify)."
    )
    issuer: list[str] = Field(default=[], description="Accepted `iss` values (a string or a list).")
    audience: list[str] = Field(default=[], description="Accepted `aud` values (a string or a list).")
    leeway: Duration = Field(default=0.0, description="Clock skew tolerated for exp and nbf.")
    required_claims: list[str] = Field(default=["exp"], description="Claims a token must carry.")
    header: str = Field(default="Authorization", description="Header carrying the token.")
    scheme: str = Field(default="Bearer", description='Auth scheme before the token ("" for none).')
    cookie: str | None = Field(default=None, description="Cookie carrying the token.")
    query_param: str | None = Field(default=None, description="Query parameter carrying the token.")
    claims_to_headers: dict[str, str] = Field(default={"sub": "X-JWT-Subject"}, description="claim -> header")
    forward_token: bool = Field(default=True, description="Keep the token in the forwarded request.")
    realm: str = Field(default="a3s-gateway", description="Realm of the WWW-Authenticate challenge.")
    jwks_cache_ttl: Duration = Field(default=300.0, gt=0, description="How long fetched JWKS keys are used.")
    jwks_min_refresh_interval: Duration = Field(default=10.0, ge=0, description="Least time between fetches.")
    jwks_timeout: Duration = Field(default=5.0, gt=0, description="Timeout of one JWKS fetch.")

    _as_lists = field_validator("issuer", "audience", mode="before")(as_list)

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        return check_field_name(value)

    @field_validator("claims_to_headers")
    @classmethod
    def _claim_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for header in value.values():
            check_field_name(header)
        return value

    @field_validator("jwks_url")
    @classmethod
    def _jwks_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"jwks_url must be an http:// or https:// URL, got {value!r}")
        return value

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, value: list[str]) -> list[str]:
        for alg in value:
            if alg.lower() == "none":
                raise ValueError('algorithm "none" (unsigned tokens) is never accepted')
            if alg not in SUPPORTED:
                raise ValueError(f"unknown algorithm {alg!r}; supported: {', '.join(SUPPORTED)}")
        return value

    @field_validator("value")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is not None:
            # Imported here: pyjwt pulls in cryptography (~10 MiB resident); every schema module is
            # imported by the compiler, and only a config with a jwt middleware needs it.
            import jwt as pyjwt
            from jwt.algorithms import HMACAlgorithm

            try:  # pyjwt refuses empty secrets and PEM/JWK text used as an HMAC secret
                HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(value)
            except pyjwt.InvalidKeyError as exc:
                raise ValueError(f"value is not usable as an HMAC secret: {exc}") from None
        return value

    @model_validator(mode="after")
    def _keys(self) -> JwtConfig:
        if self.public_key is not None and self.public_key_file is not None:
            raise ValueError("set either public_key or public_key_file, not both")
        if self.value is None and self.pem() is None and self.jwks_url is None:
            raise ValueError("jwt needs a key: value (HS256 secret), public_key, public_key_file or jwks_url")
        allowed = self.allowed_algorithms()
        if self.value is None and any(alg in HMAC_ALGORITHMS for alg in allowed):
            raise ValueError("HS256/384/512 need the shared secret `value`")
        if any(alg in ASYMMETRIC for alg in allowed) and self.pem() is None and self.jwks_url is None:
            raise ValueError("RS/PS/ES/EdDSA algorithms need public_key, public_key_file or jwks_url")
        if not allowed:
            raise ValueError("no algorithm left to verify tokens with")
        return self

    def pem(self) -> str | None:
        """The configured PEM text (reading `public_key_file`); validated when first read."""
        text = read_text(self.public_key_file) if self.public_key_file is not None else self.public_key
        if text is not None:
            load_public_key(text)
        return text

    def allowed_algorithms(self) -> tuple[str, ...]:
        if self.algorithms:
            static = self.pem()
            if static is not None and self.jwks_url is None:
                usable = key_algorithms(load_public_key(static))
                wrong = [a for a in self.algorithms if a in ASYMMETRIC and a not in usable]
                if wrong:
                    raise ValueError(
                        f"the public key cannot verify {', '.join(wrong)} (it fits {', '.join(usable)})"
                    )
            return tuple(self.algorithms)
        algs: list[str] = list(HMAC_ALGORITHMS) if self.value is not None else []
        if self.jwks_url is not None:
            algs += ASYMMETRIC
        elif (static := self.pem()) is not None:
            algs += key_algorithms(load_public_key(static))
        return tuple(algs)


declare("middleware", "jwt", config=JwtConfig, impl="middlewares.jwt")
