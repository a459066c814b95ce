"""tcp-filter: schema and the pure connection accounting (the TCP data path comes with the TCP issue)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from a3s_gateway.runtime.api import Headers, Request, Response
from a3s_gateway.runtime.errors import Forbidden
from a3s_gateway.stdlib import registry
from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.middlewares.tcp_filter import TcpFilter, TcpFilterConfig, TcpFilterState


def state(**options: Any) -> TcpFilterState:
    return TcpFilterState(TcpFilterConfig.model_validate(options))


def test_registered_for_tcp_routers() -> None:
    kind = registry.lookup("middleware", "tcp-filter")
    assert kind is not None and kind.impl is TcpFilter
    assert kind.protocols == frozenset({"tcp"})
    assert "TCP" in kind.doc


def test_the_a3s_entrypoint_spelling_is_accepted() -> None:
    config = TcpFilterConfig.model_validate({"max_connections": 100, "tcp_allowed_ips": ["10.0.0.0/8"]})
    assert config.allowed_ips == ("10.0.0.0/8",) and config.max_connections == 100
    assert TcpFilterConfig.model_validate({}).allowed_ips == ()


@pytest.mark.parametrize(
    "options",
    [{"allowed_ips": ["10.0.0.0/33"]}, {"allowed_ips": ["nope"]}, {"max_connections": 0}, {"max_conns": 1}],
)
def test_bad_config_is_a_validation_error(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TcpFilterConfig.model_validate(options)


@pytest.mark.parametrize(
    ("client", "allowed"),
    [
        ("10.1.2.3", True),
        ("11.0.0.1", False),
        ("192.168.1.7", True),
        ("192.168.1.8", False),
        ("2001:db8::1", True),
        ("2001:db9::1", False),
        ("::ffff:10.0.0.5", True),  # an IPv4 client on a dual-stack socket
        ("fe80::1%eth0", False),
        ("not-an-ip", False),
    ],
)
def test_allowlist(client: str, allowed: bool) -> None:
    filt = state(allowed_ips=["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"])
    assert filt.admit(client) is allowed
    assert filt.statistics()["refused_ip"] == int(not allowed)


def test_empty_allowlist_admits_everyone() -> None:
    assert state().admit("203.0.113.9")


def test_connection_limit_counts_admits_and_releases() -> None:
    filt = state(max_connections=2)
    assert filt.admit("10.0.0.1") and filt.admit("10.0.0.2")
    assert not filt.admit("10.0.0.3")
    assert filt.statistics() == {"active": 2, "refused_ip": 0, "refused_full": 1}
    filt.release()
    assert filt.admit("10.0.0.3")
    filt.release()
    filt.release()
    assert filt.statistics()["active"] == 0
    with pytest.raises(RuntimeError):
        filt.release()


def test_refused_addresses_do_not_take_a_slot() -> None:
    filt = state(max_connections=1, allowed_ips=["10.0.0.0/8"])
    assert not filt.admit("8.8.8.8")
    assert filt.admit("10.0.0.1")


@pytest.mark.anyio
async def test_on_an_http_router_only_the_allowlist_applies() -> None:
    config = TcpFilterConfig.model_validate({"allowed_ips": ["10.0.0.0/8"], "max_connections": 1})
    ctx = BuildContext(node_id="middleware:tcp", name="tcp")
    mw = TcpFilter(config, TcpFilter.new_state(config, ctx), ctx)

    async def ok(request: Request) -> Response:
        return Response.text(200, "ok")

    for _ in range(2):
        assert (await mw(Request("GET", "/", Headers(), client_ip="10.0.0.1"), ok)).status == 200
    with pytest.raises(Forbidden):
        await mw(Request("GET", "/", Headers(), client_ip="8.8.8.8"), ok)
