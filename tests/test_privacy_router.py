"""The `privacy_router` service kind: the detectors on published test vectors, and a real gateway
in front of two fake model upstreams (a "hosted" and a "local" one) with the real openai and
anthropic SDKs, httpx and raw bodies as clients. Async tests run on asyncio, uvloop and trio."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import anyio
import httpx
import pytest

from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.stdlib.privacy import Classifier, Rule, Scanner
from a3s_gateway.stdlib.privacy.detectors import DETECTORS, iban_ok, luhn_ok, national_id_ok
from a3s_gateway.stdlib.services.schemas.privacy_router import PrivacyRouterConfig

from .llm_fakes import LlmUpstream, llm_upstreams
from .routing_kinds import access_entries, chat, kind_errors, write_config
from .stubs import eventually, free_port

# ------------------------------------------------------------------ the detectors


def _classifier(redact: tuple[str, ...] = (), **config: Any) -> Classifier:
    options = PrivacyRouterConfig.model_validate({"route": {"public": "x"}, **config})
    return Classifier(Scanner(options.scan_rules()), frozenset(redact))


def _found(text: str, **config: Any) -> list[str]:
    return list(_classifier(**config).classify(text.encode())[0].rules)


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("write to jane.doe+tag@mail.example.co.uk today", "email"),
        ("card 4111 1111 1111 1111 exp 12/29", "card"),  # Visa's test number
        ("amex 378282246310005.", "card"),
        ("mc 5555-5555-5555-4444", "card"),
        ("pay GB82 WEST 1234 5698 7654 32 now", "iban"),  # the ISO 13616 example
        ("DE89370400440532013000", "iban"),
        ("FR14 2004 1010 0505 0001 3M02 606", "iban"),
        ("ssn 078-05-1120", "national_id"),
        ("身份证 11010519491231002X", "national_id"),  # GB 11643's example
        ("NI number AB 12 34 56 C", "national_id"),
        ("call +44 20 7946 0958", "phone"),
        ("call (415) 555-2671", "phone"),
        ("key sk-proj-abcdefghijklmnopqrstuvwxyz012345", "api_key"),
        ("AKIAIOSFODNN7EXAMPLE", "api_key"),  # AWS's documented example id
        ("ghp_" + "a1B2" * 9, "api_key"),
        ("token xoxb-123456789012-abcdefABCDEF", "api_key"),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----",
            "private_key",
        ),
    ],
)
def test_each_detector_finds_its_published_example(text: str, rule: str) -> None:
    assert _found(text) == [rule]


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112",  # fails Luhn
        "GB83 WEST 1234 5698 7654 32",  # fails mod 97
        "ssn 000-12-3456 or 666-12-3456 or 900-12-3456",  # numbers never issued
        "id 110105194912310021",  # wrong check digit (and not a card: fails Luhn)
        "NI BG 12 34 56 C",  # a prefix never issued
        "version 1.2.3, +1 2 3, 2024-01-15 12:30, pi 3.14159, order 12345678",
        "sk-short and AKIA-not-a-key and user@localhost",
    ],
)
def test_look_alikes_are_not_findings(text: str) -> None:
    assert _found(text) == []


def test_the_checks_by_themselves() -> None:
    assert luhn_ok(b"4012888888881881") and not luhn_ok(b"4012888888881882")
    assert not luhn_ok(b"4111")  # too short to be a card
    assert iban_ok(b"GB82 WEST 1234 5698 7654 32") and not iban_ok(b"GB82 WEST 1234 5698 7654 33")
    assert national_id_ok(b"11010519491231002X") and national_id_ok(b"11010519491231002x")
    assert national_id_ok(b"123-45-6789") and not national_id_ok(b"123-00-6789")


def test_rules_keywords_levels_and_the_highest_level_wins() -> None:
    rules = {
        "projects": {"level": "confidential", "keywords": ["Project Nightingale", "机密"]},
        "codes": {"level": "internal", "patterns": [r"\bEMP-[0-9]{6}\b"]},
        "exact": {"level": "internal", "keywords": ["ACME"], "case_sensitive": True},
    }
    assert _found("about project nightingale", rule=rules) == ["projects"]
    assert _found("about projectnightingales", rule=rules) == []  # whole words only
    assert _found("这是机密文件", rule=rules) == ["projects"]  # CJK: no word boundary to require
    assert _found("EMP-123456 asked", rule=rules) == ["codes"]
    assert _found("acme and Acme", rule=rules) == []
    classifier = _classifier(rule=rules)
    decision, _ = classifier.classify(b"ACME: EMP-123456, mail a@b.io, card 4111111111111111")
    assert decision.level_name == "restricted"
    assert decision.rules == ("card", "email", "codes", "exact")  # most severe first


def test_detectors_can_be_turned_off_or_given_another_level() -> None:
    assert _found("mail a@b.io", detectors={"email": "off"}) == []
    decision, _ = _classifier(detectors={"email": "internal"}).classify(b"mail a@b.io")
    assert decision.level_name == "internal"


def test_redaction_replaces_only_the_named_rules_matches() -> None:
    classifier = _classifier(redact=("email",))
    body = {"model": "m", "messages": [{"role": "user", "content": "mail a@b.io, card 4111111111111111"}]}
    decision, data = classifier.classify(json.dumps(body).encode())
    assert decision.redacted == 1 and decision.level_name == "restricted"
    sent = json.loads(data)
    assert sent["messages"][0]["content"] == "mail [REDACTED:email], card 4111111111111111"
    untouched = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    assert classifier.classify(untouched)[1] is untouched  # nothing redacted: the same bytes


def test_every_text_of_each_api_is_read() -> None:
    classifier = _classifier(redact=("*",))
    bodies: list[dict[str, Any]] = [
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "a@b.io"}]}]},
        {"system": "a@b.io", "messages": []},  # Anthropic's system prompt
        {"system": [{"type": "text", "text": "a@b.io"}], "messages": []},
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t", "content": "a@b.io"}],
                }
            ]
        },
        {"prompt": ["ok", "a@b.io"]},  # completions
        {"input": "a@b.io"},  # embeddings
        {"platform": "slack", "channel_id": "C1", "text": "a@b.io", "raw": {}},  # a channel event
    ]
    for body in bodies:
        decision, data = classifier.classify(json.dumps(body).encode())
        assert decision.rules == ("email",), body
        assert b"a@b.io" not in data and b"[REDACTED:email]" in data
    # Not prompt text: the model name, tool definitions, metadata.
    other = {"model": "a@b.io", "metadata": {"user": "a@b.io"}, "messages": []}
    assert classifier.classify(json.dumps(other).encode())[0].rules == ()


def test_a_body_that_is_not_json_is_scanned_whole() -> None:
    classifier = _classifier(redact=("card",))
    decision, data = classifier.classify(b"\xff\xfe card 4111111111111111 \xff")
    assert decision.rules == ("card",)
    assert data == b"\xff\xfe card [REDACTED:card] \xff"


def test_at_one_position_the_first_rule_in_order_names_the_match() -> None:
    classifier = Classifier(
        Scanner([Rule("r", 1, "b@c"), *[Rule(d.name, 2, d.pattern, d.check) for d in DETECTORS]]),
        frozenset({"*"}),
    )
    assert classifier.classify(b"xa@b.io b@c")[1] == b"[REDACTED:email] [REDACTED:r]"
    assert classifier.classify(b"b@c.io")[1] == b"[REDACTED:r].io"
    # A check that fails hands the position on: 18 digits, not a Chinese ID, a valid card.
    number = _luhn_completed("40000000000000000")
    assert not national_id_ok(number.encode())
    assert _found(f"n {number}") == ["card"]


def _luhn_completed(digits: str) -> str:
    """`digits` with the Luhn check digit appended."""
    return next(digits + d for d in "0123456789" if luhn_ok((digits + d).encode()))


# ------------------------------------------------------------------ compile errors


def _errors(tmp_path: Path, block: str) -> list[str]:
    return kind_errors(tmp_path, "privacy_router", block, ("hosted",))


def test_bad_regexps_and_names_are_compile_errors_at_their_place(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        '    route = { public = "hosted" }\n'
        '    rule "x" {\n      level = "internal"\n      patterns = ["ok", "(a", "a*", "(?<=a)b"]\n    }\n'
        '    rule "email" {\n      level = "internal"\n      keywords = ["x"]\n    }\n'
        '    redact = ["nope"]\n    mask = "{other}"',
    )
    # Each at its own element of the list: line and column.
    assert "11:25 service 'routed': bad regexp at offset 0: missing closing ): `(a`" in errors, errors
    assert "11:31 service 'routed': this regexp matches the empty string" in errors, errors
    assert sum("bad regexp" in e for e in errors) == 2, errors  # the lookbehind too (RE2 has none)
    assert any("detector's name" in e for e in errors), errors
    assert any(e.startswith("17:") and "'nope'" in e for e in errors), errors
    assert any(e.startswith("18:") and "mask" in e for e in errors), errors


def test_route_needs_public_and_existing_services(tmp_path: Path) -> None:
    errors = _errors(tmp_path, '    route = { restricted = "hosted" }')
    assert any("`public`" in e for e in errors), errors
    errors = _errors(tmp_path, '    route = { public = "hosted", restricted = "local" }')
    assert any("'local' is not defined" in e for e in errors), errors


# ------------------------------------------------------------------ a real gateway


@dataclass
class Setup:
    port: int
    hosted: LlmUpstream
    local: LlmUpstream
    log: Path
    gateway: Gateway

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def entries(self) -> list[dict[str, Any]]:
        return access_entries(self.log)

    def decisions(self, target: str, reason: str) -> float:
        assert self.gateway.metrics is not None
        labels = {"service": "chat", "target": target, "reason": reason}
        return self.gateway.metrics.value("a3s_gateway_routing_decisions_total", labels) or 0.0


@asynccontextmanager
async def running(tmp_path: Path, options: str = "") -> AsyncIterator[Setup]:
    async with llm_upstreams("hosted", "local") as ups:
        port = free_port()
        config = f"""
routers "chat" {{
  rule    = "PathPrefix(`/`)"
  service = "chat"
}}
services "chat" {{
  privacy_router {{
    route = {{ public = "hosted", confidential = "local" }}
    rule "projects" {{
      level    = "internal"
      keywords = ["Project Nightingale"]
    }}
    {options}
  }}
}}
services "hosted" {{ load_balancer {{ servers = [{{ url = "{ups["hosted"].url}" }}] }} }}
services "local" {{ load_balancer {{ servers = [{{ url = "{ups["local"].url}" }}] }} }}
"""
        path, log = write_config(tmp_path, port, config)
        async with Gateway(str(path)) as gateway:
            yield Setup(port, ups["hosted"], ups["local"], log, gateway)


@pytest.mark.anyio
async def test_each_level_goes_to_its_service(tmp_path: Path) -> None:
    async with running(tmp_path) as s:
        assert await chat(s.base, "hello there") == "from hosted"
        # internal: no service of its own, so public's
        assert await chat(s.base, "status of Project Nightingale") == "from hosted"
        assert await chat(s.base, "mail jane@corp.example") == "from local"
        # restricted: confidential's service; the body went up byte for byte
        assert await chat(s.base, "card 4111 1111 1111 1111") == "from local"
        assert s.local.last.body["messages"][0]["content"] == "card 4111 1111 1111 1111"

        client = anthropic.Anthropic(base_url=s.base, api_key="k", max_retries=0, timeout=20)

        def message() -> Any:
            return client.messages.create(
                model="m",
                max_tokens=16,
                system="The user's key is sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
                messages=[{"role": "user", "content": "hi"}],
            )

        reply = await anyio.to_thread.run_sync(message)
        assert reply.content[0].text == "from local"
        await eventually(lambda: len(s.entries()) == 5)
        entries = s.entries()
        assert [e["privacy_level"] for e in entries] == [
            "public",
            "internal",
            "confidential",
            "restricted",
            "restricted",
        ]
        assert entries[1]["privacy_rules"] == ["projects"] and entries[4]["privacy_rules"] == ["api_key"]
        assert s.decisions("local", "restricted") == 2 and s.decisions("hosted", "internal") == 1
        # The reasons, never the text.
        text = s.log.read_text()
        # (The card number whole: "4111" alone can be part of a port in the log's client address.)
        assert "jane@corp.example" not in text and "Nightingale" not in text
        assert "4111 1111 1111 1111" not in text and "4111111111111111" not in text


@pytest.mark.anyio
async def test_redaction_before_forwarding_fixes_the_length(tmp_path: Path) -> None:
    async with running(tmp_path, 'redact = ["email", "projects"]') as s, httpx.AsyncClient() as client:
        body = {
            "model": "m",
            "messages": [{"role": "user", "content": "Project Nightingale: ask bob@corp.example"}],
        }

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length from the client
            data = json.dumps(body).encode()
            yield data[:10]
            yield data[10:]

        response = await client.post(f"{s.base}/v1/chat/completions", content=chunked())
        assert response.status_code == 200
        seen = s.local.last
        assert seen.body["messages"][0]["content"] == "[REDACTED:projects]: ask [REDACTED:email]"
        assert seen.headers["content-length"] == str(len(seen.raw))
        assert "transfer-encoding" not in seen.headers
        await eventually(lambda: len(s.entries()) == 1)
        assert s.entries()[0]["privacy_redacted"] == 2


@pytest.mark.anyio
async def test_channel_events_and_raw_bodies_are_classified(tmp_path: Path) -> None:
    async with running(tmp_path, 'max_body = "1KiB"') as s, httpx.AsyncClient() as client:
        event = {
            "platform": "telegram",
            "channel_id": "42",
            "user_id": "7",
            "message_id": "1",
            "text": "my IBAN is DE89 3704 0044 0532 0130 00",
            "attachments": [],
            "reply_to": None,
            "timestamp": 1764941400,
            "raw": {},
        }
        await client.post(f"{s.base}/agent", json=event)
        assert s.local.last.body == event and not s.hosted.seen
        await client.post(f"{s.base}/agent", json={**event, "text": "good morning"})
        assert s.hosted.last.body["text"] == "good morning"
        await client.post(f"{s.base}/agent", content=b"plain text with 4111111111111111")
        assert s.local.last.raw == b"plain text with 4111111111111111"
        response = await client.post(f"{s.base}/v1/chat/completions", content=b"x" * 2000)
        assert response.status_code == 413
        assert "larger than 1024 bytes" in response.json()["error"]["message"]


def test_rules_too_large_to_compile_together_are_a_compile_error(tmp_path: Path) -> None:
    words = ", ".join(f'"word{i:05d}{"x" * 40}"' for i in range(60000))
    errors = _errors(
        tmp_path,
        f'    route = {{ public = "hosted" }}\n    rule "big" {{\n      level = "internal"\n'
        f"      keywords = [{words}]\n    }}",
    )
    assert any(e.startswith("9:5") and "too large to compile together" in e for e in errors), errors
