"""The DNS-01 provider kinds (stdlib/resolvers/): SigV4 against AWS's published test vectors, and
Cloudflare and Route53 against fakes on loopback that check each request's shape and signature
(there is no internet here). challtestsrv runs against the real pebble-challtestsrv in
tests/test_acme_dns01.py."""

from __future__ import annotations

import datetime
import hashlib
import json
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from a3s_gateway.stdlib.resolvers._base import DnsProviderError
from a3s_gateway.stdlib.resolvers._sigv4 import sign
from a3s_gateway.stdlib.resolvers.cloudflare import Cloudflare
from a3s_gateway.stdlib.resolvers.route53 import Route53
from a3s_gateway.stdlib.resolvers.schemas.cloudflare import CloudflareConfig
from a3s_gateway.stdlib.resolvers.schemas.route53 import Route53Config

SUITE = {
    "access_key_id": "AKIDEXAMPLE",
    "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    "region": "us-east-1",
    "service": "service",
    "now": datetime.datetime(2015, 8, 30, 12, 36, tzinfo=datetime.UTC),
}


@pytest.mark.parametrize(
    ("method", "url", "signature"),
    [
        # AWS's SigV4 test suite: get-vanilla, get-vanilla-query-order-key-case, post-vanilla.
        (
            "GET",
            "https://example.amazonaws.com/",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        (
            "GET",
            "https://example.amazonaws.com/?Param2=value2&Param1=value1",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
        (
            "POST",
            "https://example.amazonaws.com/",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
    ],
)
def test_sigv4_test_suite(method: str, url: str, signature: str) -> None:
    headers = sign(method, url, {}, b"", **SUITE)  # type: ignore[arg-type]
    assert headers["x-amz-date"] == "20150830T123600Z"
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}"
    )


def test_sigv4_s3_documented_get_object() -> None:
    """Amazon S3's documented example (GET Object, a Range header, x-amz-content-sha256)."""
    empty = hashlib.sha256(b"").hexdigest()
    headers = sign(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        {"Range": "bytes=0-9", "x-amz-content-sha256": empty},
        b"",
        access_key_id="AKIAIOSFODNN7EXAMPLE",
        secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region="us-east-1",
        service="s3",
        now=datetime.datetime(2013, 5, 24, tzinfo=datetime.UTC),
    )
    assert headers["authorization"].endswith(
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


Handler = Any


@contextmanager
def fake(handle: Any) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTP server on loopback calling handle(request dict) -> (status, body bytes)."""
    seen: list[dict[str, Any]] = []

    class H(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            request = {
                "method": self.command,
                "path": urlsplit(self.path).path,
                "query": parse_qs(urlsplit(self.path).query),
                "url": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": self.rfile.read(length),
            }
            seen.append(request)
            status, body = handle(request)
            self.send_response(status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = _any

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _cloudflare(request: dict[str, Any], records: dict[str, dict[str, Any]]) -> tuple[int, bytes]:
    def ok(result: Any) -> tuple[int, bytes]:
        return 200, json.dumps({"success": True, "errors": [], "result": result}).encode()

    if request["headers"].get("authorization") != "Bearer cf-token":
        return 403, json.dumps(
            {"success": False, "errors": [{"code": 10000, "message": "Authentication error"}]}
        ).encode()
    path, query = request["path"], request["query"]
    if request["method"] == "GET" and path == "/client/v4/zones":
        return ok([{"id": "zone-1", "name": "example.com"}] if query.get("name") == ["example.com"] else [])
    if path == "/client/v4/zones/zone-1/dns_records":
        if request["method"] == "POST":
            record = json.loads(request["body"])
            assert set(record) == {"type", "name", "content", "ttl"} and record["type"] == "TXT", record
            rid = f"rec-{len(records) + 1}"
            records[rid] = record
            return ok({"id": rid, **record})
        found = [
            {"id": rid, **r}
            for rid, r in records.items()
            if [r["name"]] == query.get("name")
            and [r["content"]] == query.get("content")
            and query.get("type") == ["TXT"]
        ]
        return ok(found)
    if request["method"] == "DELETE" and path.startswith("/client/v4/zones/zone-1/dns_records/"):
        records.pop(path.rsplit("/", 1)[1])
        return ok({"id": path.rsplit("/", 1)[1]})
    return 404, b"{}"


@pytest.mark.anyio
async def test_cloudflare_request_shapes() -> None:
    records: dict[str, dict[str, Any]] = {}
    with fake(lambda r: _cloudflare(r, records)) as (url, seen):
        provider = Cloudflare(CloudflareConfig(api_token="cf-token", api_url=url + "/client/v4"))
        try:
            await provider.set_txt("_acme-challenge.www.example.com.", "value-1")
            await provider.set_txt("_acme-challenge.www.example.com.", "value-2")
            assert sorted(r["content"] for r in records.values()) == ["value-1", "value-2"]
            assert all(
                r["name"] == "_acme-challenge.www.example.com" and r["ttl"] == 120 for r in records.values()
            )
            await provider.delete_txt("_acme-challenge.www.example.com.", "value-1")
            assert [r["content"] for r in records.values()] == ["value-2"]  # the other value stays
        finally:
            await provider.aclose()
        # The zone was found by walking up the name (www.example.com, then example.com), once.
        zone_lookups = [r["query"]["name"] for r in seen if r["path"] == "/client/v4/zones"]
        assert zone_lookups == [["www.example.com"], ["example.com"]]
        wrong = Cloudflare(CloudflareConfig(api_token="not-it", api_url=url + "/client/v4", zone_id="zone-1"))
        try:
            with pytest.raises(DnsProviderError, match="Authentication error"):
                await wrong.set_txt("_acme-challenge.example.com.", "v")
        finally:
            await wrong.aclose()


def _route53(
    request: dict[str, Any], changes: list[tuple[str, str, list[str]]], secret: str
) -> tuple[int, bytes]:
    headers = request["headers"]
    assert request["method"] == "POST" and request["path"] == "/2013-04-01/hostedzone/Z123/rrset"
    assert headers["content-type"] == "text/xml"
    # Recompute the signature as Route 53 would, from the request as received.
    when = datetime.datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    names = headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert names == ["content-type", "host", "x-amz-date"], names
    expected = sign(
        "POST",
        f"http://{headers['host']}{request['url']}",
        {"content-type": headers["content-type"]},
        request["body"],
        access_key_id="AKID",
        secret_access_key=secret,
        region="us-east-1",
        service="route53",
        now=when,
    )["authorization"]
    if headers["authorization"] != expected:
        return 403, b"<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code></Error></ErrorResponse>"
    ns = {"r": "https://route53.amazonaws.com/doc/2013-04-01/"}
    change = ET.fromstring(request["body"]).find("r:ChangeBatch/r:Changes/r:Change", ns)
    assert change is not None
    rrset = change.find("r:ResourceRecordSet", ns)
    assert rrset is not None and rrset.findtext("r:Type", namespaces=ns) == "TXT"
    values = [v.text or "" for v in rrset.findall("r:ResourceRecords/r:ResourceRecord/r:Value", ns)]
    changes.append(
        (
            change.findtext("r:Action", namespaces=ns) or "",
            rrset.findtext("r:Name", namespaces=ns) or "",
            values,
        )
    )
    return 200, b"<ChangeResourceRecordSetsResponse/>"


@pytest.mark.anyio
async def test_route53_request_shapes_and_signature() -> None:
    changes: list[tuple[str, str, list[str]]] = []
    with fake(lambda r: _route53(r, changes, "the-secret")) as (url, _seen):
        config = Route53Config(
            access_key_id="AKID",
            secret_access_key="the-secret",
            hosted_zone_id="/hostedzone/Z123",
            endpoint=url,
        )
        provider = Route53(config)
        try:
            name = "_acme-challenge.example.com."
            await provider.set_txt(name, "v1")
            await provider.set_txt(name, "v2")  # a wildcard and its bare name share the set
            await provider.delete_txt(name, "v1")
            await provider.delete_txt(name, "v2")
        finally:
            await provider.aclose()
        assert changes == [
            ("UPSERT", name, ['"v1"']),
            ("UPSERT", name, ['"v1"', '"v2"']),
            ("UPSERT", name, ['"v2"']),
            ("DELETE", name, ['"v2"']),
        ]
        wrong = Route53(config.model_copy(update={"secret_access_key": "wrong"}))
        try:
            with pytest.raises(DnsProviderError, match=r"403 .*SignatureDoesNotMatch"):
                await wrong.set_txt("_acme-challenge.example.com.", "v")
        finally:
            await wrong.aclose()
