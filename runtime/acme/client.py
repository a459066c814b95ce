"""One ACME order, start to finish, on the `acme` library (certbot's client, RFC 8555).

The library is synchronous (requests): everything here runs in a worker thread
(`anyio.to_thread.run_sync`, manager.py), which keeps the event loop serving on asyncio and trio
alike. Answering a challenge is the `Solver`'s job (solvers.py); it is called from this thread.

Steps (RFC 8555 §7): the account (registered once, its key and URL kept in storage), a new order
for the names, for each authorization the configured challenge made ready and answered, then
finalization with a CSR and the chain downloaded. Every solver preparation is cleaned up, the
order failing or not. badNonce is retried by the library once per request; an order that still
fails raises `AcmeError` with the server's problem document in its message.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from acme import challenges, client, errors, messages
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.b64 import b64encode
from josepy.jwa import ES256
from josepy.jwk import JWK, JWKEC

from .keys import csr_for, key_pem, load_key, new_key
from .storage import StoredCertificate

__all__ = ["AcmeError", "Challenge", "Solver", "open_account", "order_certificate", "renewal_time"]

USER_AGENT = "a3s-gateway"
log = logging.getLogger("a3s_gateway.acme")


class AcmeError(Exception):
    """An order that failed: the server's answer, or the network's."""


@dataclass(frozen=True)
class Challenge:
    """What a solver makes ready: `kind` is "http-01", "tls-alpn-01" or "dns-01"; `validation` is
    what is published (the key authorization, or for DNS-01 its digest, the TXT value)."""

    kind: str
    domain: str
    token: str
    key_authorization: str
    validation: str


class Solver(Protocol):
    def present(self, challenge: Challenge) -> None: ...

    def cleanup(self, challenge: Challenge) -> None: ...


# RFC 8555 §6.5: badNonce is retryable, with the fresh nonce the error carried. The library
# retries once; a CA that refuses many nonces (pebble refuses 5% by default, or as many as
# PEBBLE_WFE_NONCEREJECT says) would still fail one request in a few orders.
NONCE_RETRIES = 10


class _Network(client.ClientNetwork):
    def post(self, *args: Any, **kwargs: Any) -> Any:
        for _attempt in range(NONCE_RETRIES - 1):
            try:
                return self._post_once(*args, **kwargs)
            except messages.Error as error:
                if error.code != "badNonce":
                    raise
        return self._post_once(*args, **kwargs)


class _TlsAlpnResponse(challenges.KeyAuthorizationChallengeResponse):
    """The library dropped TLS-ALPN-01 (it needed pyOpenSSL); its response is just `{}`."""

    typ = "tls-alpn-01"


@dataclass
class Account:
    acme: client.ClientV2
    key: JWK
    record: dict[str, str]  # what storage keeps: key PEM, account URL, email


def open_account(
    directory: str, ca_bundle: str | None, record: dict[str, str] | None, email: str | None
) -> Account:
    """The account at `directory`: the stored one (its contact updated when `email` changed), or
    a new registration (terms agreed)."""
    if record and "key" in record:
        private = load_key(record["key"].encode())
    else:
        private = new_key("ec256")
        record = {"key": key_pem(private).decode()}
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    key = JWKEC(key=private)
    verify: Any = ca_bundle or True  # requests' `verify`: a CA file, or the system's
    net = _Network(key, alg=ES256, verify_ssl=verify, user_agent=USER_AGENT, timeout=30)
    try:
        acme = client.ClientV2(client.ClientV2.get_directory(directory, net), net)
        if record.get("uri"):
            stored = messages.RegistrationResource(uri=record["uri"], body=messages.Registration())
            net.account = stored
            if email and record.get("email") != email:  # `email` changed: RFC 8555 §7.3.2
                acme.update_registration(stored, messages.Registration.from_data(email=email))
                record = {**record, "email": email}
        else:
            new = messages.NewRegistration.from_data(email=email, terms_of_service_agreed=True)
            try:
                regr = acme.new_account(new)
            except errors.ConflictError as exc:  # the key is registered already: use that account
                regr = acme.query_registration(messages.RegistrationResource(uri=exc.location))
            net.account = regr
            record = {**record, "uri": regr.uri, "email": email or ""}
    except (errors.Error, messages.Error, OSError, ValueError) as exc:
        raise AcmeError(f"{directory}: {_describe(exc)}") from None
    return Account(acme, key, record)


def order_certificate(
    account: Account, names: tuple[str, ...], key_type: str, kind: str, solver: Solver, timeout: float
) -> StoredCertificate:
    """Order a certificate for `names`, answering `kind` challenges with `solver`."""
    private = new_key(key_type)
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=timeout)
    prepared: list[Challenge] = []
    try:
        order = account.acme.new_order(csr_for(private, names))
        for authz in order.authorizations:
            if authz.body.status == messages.STATUS_VALID:
                continue  # authorized already (an earlier order's authorization is reused)
            challb, challenge = _pick(authz, kind, account.key)
            solver.present(challenge)
            prepared.append(challenge)
            response = (
                _TlsAlpnResponse(key_authorization=challenge.key_authorization)
                if kind == "tls-alpn-01"
                else challb.chall.response(account.key)
            )
            account.acme.answer_challenge(challb, response)
        order = account.acme.poll_and_finalize(order, deadline)
    except (errors.Error, messages.Error, OSError, ValueError) as exc:
        raise AcmeError(f"{', '.join(names)}: {_describe(exc)}") from None
    finally:
        for challenge in prepared:
            try:
                solver.cleanup(challenge)
            except Exception as exc:  # a record left behind must not hide the order's outcome
                log.warning(
                    "acme: cleaning up the %s challenge of %s failed: %s",
                    challenge.kind,
                    challenge.domain,
                    exc,
                )
    return StoredCertificate(names, order.fullchain_pem.encode(), key_pem(private))


def _pick(authz: messages.AuthorizationResource, kind: str, key: JWK) -> tuple[Any, Challenge]:
    domain = authz.body.identifier.value
    offered = []
    for challb in authz.body.challenges:
        chall = challb.chall
        # TLS-ALPN-01 is unknown to the library: it parses as UnrecognizedChallenge, its JSON kept.
        raw = chall.jobj if isinstance(chall, challenges.UnrecognizedChallenge) else None
        typ = raw.get("type") if raw is not None else chall.typ
        offered.append(str(typ))
        if typ != kind:
            continue
        token = str(raw["token"]) if raw is not None else chall.encode("token")
        key_authorization = f"{token}.{b64encode(key.thumbprint()).decode()}"
        validation = chall.validation(key) if kind == "dns-01" else key_authorization
        wildcard = "*." if authz.body.wildcard else ""
        return challb, Challenge(kind, wildcard + domain, token, key_authorization, validation)
    raise AcmeError(f"{domain}: the server offers no {kind} challenge (only {', '.join(offered)})")


def renewal_time(
    directory: str, ca_bundle: str | None, chain: bytes
) -> tuple[datetime.datetime, datetime.datetime] | None:
    """When ARI (RFC 9773) suggests renewing `chain`, and when to ask again (the server's
    Retry-After, else 6 hours), both in UTC; None when the server offers no ARI."""
    verify: Any = ca_bundle or True
    net = _Network(None, verify_ssl=verify, user_agent=USER_AGENT, timeout=30)
    acme = client.ClientV2(client.ClientV2.get_directory(directory, net), net)
    when, next_check = acme.renewal_time(chain)
    if when is None:
        return None
    # The library gives the next check in naive local time, and `when` in UTC.
    return _utc(when), next_check.astimezone(datetime.UTC)


def _utc(when: datetime.datetime) -> datetime.datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=datetime.UTC)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, errors.ValidationError):
        problems = [
            f"{a.body.identifier.value}: {c.error}"
            for a in exc.failed_authzrs
            for c in a.body.challenges
            if c.error
        ]
        return "validation failed: " + "; ".join(problems or ["(no detail)"])
    if isinstance(exc, errors.TimeoutError):
        return "the server did not finish the order in time"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
