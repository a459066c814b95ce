"""AWS Signature Version 4 (the `Authorization` header of an AWS API request), for Route53.

The algorithm of AWS's "Signature Version 4 signing process": a canonical request (method,
URI-encoded path, sorted query, lower-case sorted headers, signed header list, SHA-256 of the
payload), a string to sign over the credential scope (date/region/service/aws4_request), and an
HMAC-SHA256 chain from the secret key down that scope. Two calls to Route53 need nothing more,
so no SDK is pulled in. tests/test_resolvers.py checks it against AWS's published test vectors.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

__all__ = ["sign"]


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    access_key_id: str,
    secret_access_key: str,
    region: str,
    service: str,
    now: datetime.datetime,
    session_token: str | None = None,
) -> dict[str, str]:
    """`headers` plus host, x-amz-date (and x-amz-security-token) and the Authorization header."""
    parts = urlsplit(url)
    amz_date = now.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = {k.lower(): v for k, v in headers.items()}
    out.setdefault("host", parts.netloc)
    out["x-amz-date"] = amz_date
    if session_token:
        out["x-amz-security-token"] = session_token
    signed = sorted(out)
    canonical_headers = "".join(f"{k}:{' '.join(out[k].split())}\n" for k in signed)
    query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in sorted(p.split("=", 1) if "=" in p else (p, "") for p in parts.query.split("&") if p)
    )
    canonical = "\n".join(
        [
            method,
            quote(parts.path or "/", safe="/-_.~"),
            query,
            canonical_headers,
            ";".join(signed),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(("AWS4" + secret_access_key).encode(), amz_date[:8])
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, SignedHeaders={';'.join(signed)}, "
        f"Signature={signature}"
    )
    return out
