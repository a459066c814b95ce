"""Sticky sessions: cookie values, Set-Cookie attributes, pinning, re-pinning and the LRU bound."""

from __future__ import annotations

from collections.abc import Sequence

from a3s_gateway.compiler.schema import StickyConfig
from a3s_gateway.runtime.api import Backend, Headers, Request
from a3s_gateway.stdlib.services.sticky import StickySessions, cookie_value, read_cookie, set_cookie_header


def request(cookie: str | None = None) -> Request:
    headers = Headers.from_pairs([("cookie", cookie)] if cookie else [])
    return Request("GET", "/", headers)


def pool(n: int = 3) -> list[Backend]:
    return [Backend(url=f"http://10.0.0.{i}:8000") for i in range(1, n + 1)]


class FirstAvailable:
    """A stand-in strategy: the first available backend, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, backends: Sequence[Backend], request: Request) -> Backend | None:
        self.calls += 1
        return next((b for b in backends if b.available), None)


def cookie_of(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0]


def test_cookie_value_is_short_opaque_and_stable() -> None:
    value = cookie_value("llm", "http://10.0.0.1:8000")
    assert value == cookie_value("llm", "http://10.0.0.1:8000")
    assert len(value) == 16 and "10.0.0.1" not in value
    assert value != cookie_value("other", "http://10.0.0.1:8000")


def test_read_cookie() -> None:
    req = request('a=1; a3s_sticky="abc" ; b=2')
    assert read_cookie(req, "a3s_sticky") == "abc"
    assert read_cookie(req, "missing") is None
    req.headers.add("cookie", "late=3")
    assert read_cookie(req, "late") == "3"


def test_set_cookie_attributes() -> None:
    plain = set_cookie_header(StickyConfig(), "v")
    assert plain == "a3s_sticky=v; Path=/; HttpOnly; SameSite=Lax"
    full = StickyConfig.model_validate(
        {"cookie": "pin", "ttl": "1h", "secure": True, "http_only": False, "same_site": "strict"}
    )
    assert set_cookie_header(full, "v") == "pin=v; Path=/; Max-Age=3600; Secure; SameSite=Strict"
    # SameSite=None is only honoured with Secure.
    assert "Secure" in set_cookie_header(StickyConfig(same_site="none"), "v")


def test_first_request_is_balanced_and_pinned() -> None:
    sticky, pick, backends = StickySessions(StickyConfig(), "svc"), FirstAvailable(), pool()
    choice = sticky.choose(request(), backends, pick)
    assert choice is not None and choice.backend is backends[0] and pick.calls == 1
    assert choice.set_cookie is not None
    again = sticky.choose(request(cookie_of(choice.set_cookie)), backends, pick)
    assert again is not None and again.backend is backends[0] and again.set_cookie is None
    assert pick.calls == 1


def test_a_pin_holds_across_any_backend_order() -> None:
    sticky, backends = StickySessions(StickyConfig(), "svc"), pool()
    value = sticky.value_for(backends[2])
    choice = sticky.choose(request(f"a3s_sticky={value}"), list(reversed(backends)), FirstAvailable())
    assert choice is not None and choice.backend is backends[2]


def test_a_dead_pin_falls_back_and_repins() -> None:
    sticky, pick, backends = StickySessions(StickyConfig(), "svc"), FirstAvailable(), pool()
    old = f"a3s_sticky={sticky.value_for(backends[0])}"
    backends[0].healthy = False
    choice = sticky.choose(request(old), backends, pick)
    assert choice is not None and choice.backend is backends[1]
    assert (
        choice.set_cookie is not None
        and cookie_of(choice.set_cookie) == f"a3s_sticky={sticky.value_for(backends[1])}"
    )
    # A client that ignores the new cookie stays on its new backend, even after the old one recovers.
    backends[0].healthy = True
    calls = pick.calls
    for _ in range(3):
        again = sticky.choose(request(old), backends, pick)
        assert again is not None and again.backend is backends[1] and again.set_cookie is None
    assert pick.calls == calls


def test_draining_and_removed_pins_fall_back() -> None:
    sticky, backends = StickySessions(StickyConfig(), "svc"), pool()
    pinned = f"a3s_sticky={sticky.value_for(backends[0])}"
    backends[0].draining = True
    choice = sticky.choose(request(pinned), backends, FirstAvailable())
    assert choice is not None and choice.backend is backends[1]
    unknown = sticky.choose(request("a3s_sticky=0000000000000000"), backends[1:], FirstAvailable())
    assert unknown is not None and unknown.set_cookie is not None


def test_no_available_backend() -> None:
    sticky, backends = StickySessions(StickyConfig(), "svc"), pool(1)
    backends[0].healthy = False
    assert sticky.choose(request(), backends, FirstAvailable()) is None


def test_the_repin_table_is_bounded_lru() -> None:
    sticky = StickySessions(StickyConfig(max_entries=2), "svc")
    backends = pool(2)
    backends[0].healthy = False
    for stale in ("s1", "s2", "s3"):
        sticky.choose(request(f"a3s_sticky={stale}"), backends, FirstAvailable())
    assert sticky.statistics() == {"repins": 2}
    assert list(sticky._repins) == ["s2", "s3"]
    sticky.choose(request("a3s_sticky=s2"), backends, FirstAvailable())  # touch s2
    sticky.choose(request("a3s_sticky=s4"), backends, FirstAvailable())
    assert list(sticky._repins) == ["s2", "s4"]
