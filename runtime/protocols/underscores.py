"""Request header names holding `_`: the entrypoint's `underscore_headers` policy.

Many backends read a request's fields through a CGI-style mapping that upper-cases the name and
turns `-` into `_` (CGI, WSGI, PHP, nginx's `$http_` variables): to them `X-Auth-User` and
`X_Auth_User` are one variable. A middleware that sets or strips the first (an auth
middleware's identity field, X-Forwarded-For) never sees the second, so a client could smuggle
it past. nginx drops such fields by default (`underscores_in_headers off`); Traefik keeps,
deletes or rejects them (`underscoreHeadersStrategy`). The default here is nginx's:

* `delete`: every field whose name holds `_` is removed before routing;
* `reject`: a request holding one is refused with 400;
* `keep`: they are forwarded, except the aliases of the framing fields (`content_length`,
  `transfer_encoding`), which are removed whatever the policy: a backend that maps them onto
  Content-Length or Transfer-Encoding would read a second framing of the body (smuggling).

Both server adapters (HTTP/1.1 and HTTP/2) call `forwarded_fields` only after one C-level test,
`b"_" in b"".join(names)`, found an underscore: a request without one pays nothing more.
"""

from __future__ import annotations

from typing import Literal

from ..events import HeaderList

__all__ = ["forwarded_fields"]  # and the UnderscorePolicy type

UnderscorePolicy = Literal["delete", "reject", "keep"]

_FRAMING_ALIASES = frozenset({b"content_length", b"transfer_encoding"})


def forwarded_fields(headers: HeaderList, policy: UnderscorePolicy) -> HeaderList | None:
    """The fields of `headers` (names lower-case, some holding `_`) that `policy` lets through,
    as a new list; None when the request must be refused (`reject`)."""
    if policy == "reject":
        return None
    if policy == "keep":
        return [field for field in headers if field[0] not in _FRAMING_ALIASES]
    return [field for field in headers if b"_" not in field[0]]
