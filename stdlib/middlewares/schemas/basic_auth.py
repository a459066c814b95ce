"""The `basic-auth` middleware's configuration (its implementation: middlewares/basic_auth.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import Field, field_validator, model_validator

from ....compiler.model import SECRET
from ...base import ConfigModel, Duration
from ...common.auth import read_lines
from ...common.fields import check_field_name
from ...registry import declare

_BCRYPT = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")
_WEAK_HASH = re.compile(r"^(\$apr1\$|\$1\$|\$5\$|\$6\$|\{SHA\}|\{SSHA\}|\$[a-z0-9-]+\$)")


@dataclass(frozen=True, slots=True)
class Credential:
    """One user's stored password: a bcrypt hash or plain text."""

    bcrypt_hash: bytes | None = None
    plain: bytes | None = None


def parse_password(secret: str) -> Credential:
    """A stored password from its htpasswd form. ValueError for unsupported hashes."""
    if secret.startswith("{PLAIN}"):
        return Credential(plain=secret[len("{PLAIN}") :].encode())
    if secret.startswith("$2"):
        if not _BCRYPT.fullmatch(secret):
            raise ValueError("malformed bcrypt hash (expected $2y$<cost>$ and 53 characters)")
        return Credential(bcrypt_hash=secret.encode())
    if _WEAK_HASH.match(secret):
        raise ValueError("unsupported password hash: only bcrypt is accepted, re-hash with `htpasswd -B`")
    return Credential(plain=secret.encode())


def parse_user_line(line: str) -> tuple[str, Credential]:
    """`user:password-or-hash` (an htpasswd line) as (user, credential)."""
    user, sep, secret = line.strip().partition(":")
    if not sep or not user or not secret:
        raise ValueError(f'invalid user entry {line.split(":", 1)[0]!r}:... (expected "user:hash")')
    try:
        return user, parse_password(secret)
    except ValueError as exc:
        raise ValueError(f"user {user!r}: {exc}") from None


class BasicAuthConfig(ConfigModel):
    username: str | None = Field(default=None, description="The single user (A3S key).")
    password: str | None = Field(
        default=None,
        description="Its password: plain text or bcrypt hash (A3S key).",
        json_schema_extra=SECRET,
    )
    users: list[str] = Field(default=[], description='htpasswd lines "user:hash".', json_schema_extra=SECRET)
    users_file: str | None = Field(default=None, description="An htpasswd file.")
    realm: str = Field(default="a3s-gateway", description="Realm of the WWW-Authenticate challenge.")
    header_field: str | None = Field(default=None, description="Request header receiving the user name.")
    remove_header: bool = Field(default=False, description="Drop Authorization before forwarding.")
    cache_ttl: Duration = Field(
        default=60.0, ge=0, description="How long a successful bcrypt check is reused."
    )

    @field_validator("header_field")
    @classmethod
    def _header(cls, value: str | None) -> str | None:
        return None if value is None else check_field_name(value)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        if value is not None and (not value or ":" in value):
            raise ValueError("username must be non-empty and cannot contain ':' (RFC 7617 §2)")
        return value

    @model_validator(mode="after")
    def _users(self) -> BasicAuthConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        if not self.load_users():
            raise ValueError("basic-auth needs users: username/password, users or users_file")
        return self

    def load_users(self) -> dict[str, Credential]:
        """Every user, read and checked (also reads `users_file`). ValueError on any bad entry."""
        lines = list(self.users)
        if self.users_file is not None:
            lines += read_lines(self.users_file)
        table: dict[str, Credential] = {}
        if self.username is not None and self.password is not None:
            table[self.username] = parse_password(self.password)
        for line in lines:
            user, credential = parse_user_line(line)
            if user in table:
                raise ValueError(f"user {user!r} is defined twice")
            table[user] = credential
        return table


declare("middleware", "basic-auth", config=BasicAuthConfig, impl="middlewares.basic_auth")
