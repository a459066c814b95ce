"""ip-allow: IPv4 and IPv6 CIDRs, IPv4-mapped addresses, Traefik's X-Forwarded-For strategies."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from a3s_gateway.runtime.api import Headers, Request, Response
from a3s_gateway.runtime.errors import Forbidden
from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.common.ipnet import IPSet, parse_ip
from a3s_gateway.stdlib.middlewares.ip_allow import IpAllow, IpAllowConfig

pytestmark = pytest.mark.anyio


class Backend:
    def __init__(self) -> None:
        self.seen: list[Request] = []

    async def __call__(self, request: Request) -> Response:
        self.seen.append(request)
        return Response.text(200, "ok")


def build(**options: Any) -> IpAllow:
    ctx = BuildContext(node_id="middleware:ip", name="ip")
    return IpAllow(IpAllowConfig.model_validate(options), None, ctx)


def request(client_ip: str, xff: list[str] | None = None) -> Request:
    headers = Headers.from_pairs(("x-forwarded-for", line) for line in xff or [])
    return Request("GET", "/", headers, client_ip=client_ip)


async def allowed(mw: IpAllow, req: Request) -> bool:
    backend = Backend()
    try:
        await mw(req, backend)
    except Forbidden as error:
        assert backend.seen == []
        assert error.status == mw.config.reject_status
        return False
    return len(backend.seen) == 1


ALLOW = ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "fe80::/10"]


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("10.1.2.3", True),
        ("11.0.0.1", False),
        ("192.168.1.7", True),
        ("192.168.1.8", False),
        ("2001:db8:1::9", True),
        ("2001:db9::1", False),
        ("::ffff:10.9.9.9", True),  # IPv4-mapped, as a dual-stack socket reports an IPv4 peer
        ("::ffff:11.9.9.9", False),
        ("fe80::1%eth0", True),
        ("not-an-ip", False),
        ("", False),
    ],
)
async def test_client_ip(ip: str, expected: bool) -> None:
    assert await allowed(build(allowed_ips=ALLOW), request(ip)) is expected


async def test_mapped_network_in_config_matches_plain_ipv4() -> None:
    mw = build(allowed_ips=["::ffff:10.0.0.0/104"])
    assert await allowed(mw, request("10.200.0.1"))
    assert not await allowed(mw, request("11.0.0.1"))


async def test_depth_strategy() -> None:
    mw = build(allowed_ips=["203.0.113.0/24"], ip_strategy={"depth": 2})
    # client, then what proxy 1 saw, then what proxy 2 (nearest) saw
    assert await allowed(mw, request("10.0.0.2", ["198.51.100.1, 203.0.113.5", "10.0.0.1"]))
    assert not await allowed(mw, request("203.0.113.5", ["203.0.113.5"]))  # too short: refused
    assert not await allowed(mw, request("203.0.113.5"))  # no header: refused


async def test_excluded_ips_strategy() -> None:
    mw = build(allowed_ips=["198.51.100.0/24"], ip_strategy={"excluded_ips": ["10.0.0.0/8"]})
    assert await allowed(mw, request("10.0.0.9", ["203.0.113.9, 198.51.100.4, 10.0.0.2, 10.0.0.1"]))
    assert not await allowed(mw, request("10.0.0.9", ["198.51.100.4, 203.0.113.9, 10.0.0.1"]))
    assert not await allowed(mw, request("198.51.100.4", ["10.0.0.1"]))  # only proxies: refused


async def test_custom_reject_status() -> None:
    mw = build(allowed_ips=["10.0.0.0/8"], reject_status=404)
    assert not await allowed(mw, request("8.8.8.8"))


def test_ipset_and_parse_ip() -> None:
    nets = IPSet(["10.0.0.0/8", "10.1.0.0/16", "::1"])
    assert "10.1.2.3" in nets and nets.contains("[::1]:8080") and not nets.contains("::2")
    assert str(parse_ip("192.0.2.1:443")) == "192.0.2.1"
    assert parse_ip("[2001:db8::1]") is not None and parse_ip("2001:db8::1") is not None


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"allowed_ips": []},
        {"allowed_ips": ["10.0.0.256"]},
        {"allowed_ips": ["10.0.0.0/33"]},
        {"allowed_ips": ["2001:db8::/129"]},
        {"allowed_ips": ["10.0.0.0/8"], "ip_strategy": {}},
        {"allowed_ips": ["10.0.0.0/8"], "ip_strategy": {"depth": -1}},
        {"allowed_ips": ["10.0.0.0/8"], "ip_strategy": {"excluded_ips": ["nope"]}},
        {"allowed_ips": ["10.0.0.0/8"], "reject_status": 200},
        {"allowed_ip": ["10.0.0.0/8"]},
    ],
)
def test_config_errors_are_validation_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        IpAllowConfig.model_validate(options)
