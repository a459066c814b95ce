"""The a3s-service.json document and what the discovery provider makes of it (pure functions)."""

from __future__ import annotations

import json
from pathlib import Path

from a3s_gateway.compiler import compile_config
from a3s_gateway.stdlib.providers._found import Found
from a3s_gateway.stdlib.providers._service_json import Seen, ServiceDoc, parse_service_doc, translate_seeds

DOC = {
    "name": "auth-service",
    "version": "1.2.0",
    "routes": [{"rule": "PathPrefix(`/auth`)", "middlewares": ["rate-limit"], "priority": 5},
               {"rule": "PathPrefix(`/login`)"}],
    "health_path": "/healthz",
    "weight": 2,
    "owner": "team-a",  # unknown fields are ignored, as A3S does
}  # fmt: skip


def test_the_document_defaults_and_seeds_of_one_service() -> None:
    doc = parse_service_doc(json.dumps(DOC).encode())
    assert isinstance(doc, ServiceDoc) and doc.health_path == "/healthz" and doc.weight == 2
    minimal = parse_service_doc(b'{"name": "svc", "version": "0.1.0"}')
    assert isinstance(minimal, ServiceDoc) and (minimal.health_path, minimal.weight, minimal.routes) == (
        "/health",
        1,
        [],
    )
    found = Found()
    other = minimal.model_copy(update={"name": "auth-service", "weight": 1})
    translate_seeds(found, [Seen("http://10.0.0.5:8000/", doc), Seen("http://10.0.0.6:8000", other)], ["web"])
    assert found.problems == []
    assert found.tree["services"] == {
        "auth-service": {"load_balancer": {"servers": [
            {"url": "http://10.0.0.5:8000", "weight": 2}, {"url": "http://10.0.0.6:8000", "weight": 1}]}}
    }  # fmt: skip
    assert found.tree["routers"] == {
        "auth-service-0": {"rule": "PathPrefix(`/auth`)", "service": "auth-service", "middlewares": ["rate-limit"],
                           "priority": 5, "entrypoints": ["web"]},
        "auth-service-1": {"rule": "PathPrefix(`/login`)", "service": "auth-service", "entrypoints": ["web"]},
    }  # fmt: skip
    assert found.origins[("routers", "auth-service-0")] == "seed http://10.0.0.5:8000/"


def test_bad_documents_are_reasons_naming_the_seed() -> None:
    assert "is not JSON" in str(parse_service_doc(b"{not json"))
    assert "is not JSON" in str(parse_service_doc(b"\xff\xfe"))
    assert str(parse_service_doc(b'{"version": "1"}')).startswith(
        "/.well-known/a3s-service.json: name: Field required"
    )
    assert "routes.0.rule" in str(parse_service_doc(b'{"name": "a", "version": "1", "routes": [{}]}'))
    assert "weight" in str(parse_service_doc(b'{"name": "a", "version": "1", "weight": -1}'))
    for path in ("health", "@elsewhere.test/health"):
        body = json.dumps({"name": "a", "version": "1", "health_path": path}).encode()
        assert str(parse_service_doc(body)).startswith("/.well-known/a3s-service.json: health_path: String")
    found = Found()
    translate_seeds(found, [Seen("http://bad:1", error="it is broken")], [])
    assert found.problems == [("seed http://bad:1", "it is broken")] and found.tree == {}


def test_seeds_in_a3s_form_and_bad_seeds(tmp_path: Path) -> None:
    path = tmp_path / "gw.hcl"
    path.write_text(
        'providers {\n  discovery {\n    seeds = [{ url = "http://10.0.0.5:8000" }, "http://10.0.0.6:8000"]\n  }\n}\n'
    )
    result = compile_config([str(path)], {})
    assert result.graph is not None
    assert result.graph.settings.providers.kinds["discovery"]["seeds"] == [
        "http://10.0.0.5:8000",
        "http://10.0.0.6:8000",
    ]
    path.write_text('providers {\n  discovery {\n    seeds = ["10.0.0.5:8000"]\n  }\n}\n')
    errors = [d.message for d in compile_config([str(path)], {}).diagnostics.errors]
    assert any("a seed is an http:// or https:// base URL" in e for e in errors), errors
