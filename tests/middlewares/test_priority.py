"""priority: requests classified by header, JWT claim, virtual key tier or name, and path.

The rules are checked on `Request` objects first; then end to end: a Gateway with `jwt`,
`llm-keys` (a key with a tier), `priority` and a `queue` of one slot in front of a held backend
(tests/middlewares/test_queue.py), where the class decides who reaches the backend first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt as pyjwt
import pytest

from a3s_gateway.runtime.api import Headers, Request, Response
from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.stdlib import registry
from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.common.priority import PRIORITY, Priority, parse_priority
from a3s_gateway.stdlib.middlewares.priority import PriorityClassifier, PriorityConfig

from ..stubs import eventually, free_port
from .test_queue import held_backend, waiting

pytestmark = pytest.mark.anyio


def classifier(rules: list[dict[str, Any]], default: str = "normal") -> PriorityClassifier:
    config = PriorityConfig.model_validate({"rules": rules, "default": default})
    return PriorityClassifier(config, None, BuildContext(node_id="middleware:p", name="p"))


def request(path: str = "/v1/chat", headers: dict[str, str] | None = None, **state: Any) -> Request:
    req = Request("POST", path, Headers.from_pairs((headers or {}).items()))
    req.state.update(state)
    return req


def test_registered() -> None:
    kind = registry.lookup("middleware", "priority")
    assert kind is not None and kind.impl is PriorityClassifier and kind.config is PriorityConfig


def test_class_names_are_read_loosely() -> None:
    assert parse_priority("BestEffort") is parse_priority("best-effort") is Priority.BEST_EFFORT
    assert parse_priority(" CRITICAL ") is Priority.CRITICAL and parse_priority("urgent") is None
    assert parse_priority(3) is None


def test_the_first_matching_rule_decides_and_the_default_is_the_rest() -> None:
    mw = classifier(
        [
            {"header": "X-Priority"},
            {"claim": "org.tier", "values": ["enterprise", "gold*"], "priority": "high"},
            {"key": "tier"},
            {"key": "name", "values": ["batch-*"], "priority": "best_effort"},
            {"path": "/v1/batches*", "priority": "low"},
        ],
        default="normal",
    )
    assert mw.classify(request(headers={"x-priority": "critical"})) is Priority.CRITICAL
    # A header value that names no class does not match: the next rules are tried.
    assert mw.classify(request(headers={"x-priority": "urgent"})) is Priority.NORMAL
    claims = {"org": {"tier": "gold-2024"}}
    assert mw.classify(request(jwt_claims=claims)) is Priority.HIGH
    assert mw.classify(request(jwt_claims={"org": "flat"})) is Priority.NORMAL
    assert mw.classify(request(llm_key="k", llm_key_tier="Low")) is Priority.LOW
    assert mw.classify(request(llm_key="batch-7")) is Priority.BEST_EFFORT
    assert mw.classify(request("/v1/batches/12")) is Priority.LOW
    assert mw.classify(request("/v1/chat")) is Priority.NORMAL


async def test_the_class_goes_to_the_request_state() -> None:
    mw = classifier([{"path": "/jobs*", "priority": "best_effort"}], default="high")
    seen: list[object] = []

    async def next_(req: Request) -> Response:
        seen.append(req.state[PRIORITY])
        return Response.text(200, "ok")

    await mw(request("/jobs/1"), next_)
    await mw(request("/chat"), next_)
    assert seen == [Priority.BEST_EFFORT, Priority.HIGH]


@pytest.mark.parametrize(
    "rule",
    [
        {},
        {"header": "X", "claim": "tier"},
        {"path": "/a"},  # a path rule needs the class it gives
        {"path": "/a*", "values": ["x"], "priority": "low"},
        {"header": "X", "priority": "urgent"},
        {"key": "id"},
    ],
)
def test_bad_rules_are_refused(rule: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PriorityConfig.model_validate({"rules": [rule]})


SECRET = "a-test-secret-that-is-at-least-32-bytes-long"
OPS_KEY, PLAIN_KEY = "sk-ops-0123456789abcdef", "sk-plain-0123456789abcdef"


def chain_config(port: int, url: str) -> str:
    return f"""
entrypoints "web" {{ address = "127.0.0.1:{port}" }}

routers "all" {{
  rule        = "PathPrefix(`/`)"
  service     = "backend"
  middlewares = ["auth", "keys", "priority", "queue"]
}}

services "backend" {{
  load_balancer {{ servers = [{{ url = "{url}" }}] }}
}}

middlewares "auth" {{
  type  = "jwt"
  value = "{SECRET}"
}}

middlewares "keys" {{
  type = "llm-keys"
  keys "ops" {{
    key  = "{OPS_KEY}"
    tier = "critical"
  }}
  keys "plain" {{
    key = "{PLAIN_KEY}"
  }}
}}

middlewares "priority" {{
  type  = "priority"
  rules = [
    {{ key = "tier" }},
    {{ claim = "tier", values = ["enterprise"], priority = "high" }},
    {{ claim = "tier", values = ["free"], priority = "best_effort" }},
  ]
}}

middlewares "queue" {{
  type           = "queue"
  max_concurrent = 1
}}
"""


async def test_a_users_jwt_tier_and_a_keys_tier_order_the_queue(tmp_path: Path) -> None:
    with held_backend() as (backend, url):
        port = free_port()
        path = tmp_path / "gateway.hcl"
        path.write_text(chain_config(port, url))
        async with (
            Gateway(str(path)) as gw,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
            anyio.create_task_group() as tg,
        ):
            statuses: dict[str, int] = {}

            async def send(name: str, key: str, tier: str) -> None:
                token = pyjwt.encode(
                    {"sub": name, "tier": tier, "exp": 4_000_000_000}, SECRET, algorithm="HS256"
                )
                headers = {"x-name": name, "x-api-key": key, "authorization": f"Bearer {token}"}
                body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
                reply = await client.post("/v1/chat/completions", content=body, headers=headers)
                statuses[name] = reply.status_code

            tg.start_soon(send, "holder", PLAIN_KEY, "pro")
            await eventually(lambda: backend.arrivals == ["holder"])
            sent = [
                ("free-user", PLAIN_KEY, "free"),  # best_effort, by the user's claim
                ("pro-user", PLAIN_KEY, "pro"),  # no rule: normal
                ("enterprise-user", PLAIN_KEY, "enterprise"),  # high, by the claim
                ("ops-key", OPS_KEY, "free"),  # critical: the key's tier is the first rule
            ]
            for queued, (name, key, tier) in enumerate(sent, start=1):
                tg.start_soon(send, name, key, tier)
                await eventually(lambda n=queued: waiting(gw) == n)  # type: ignore[misc]
            for reached in range(2, 6):
                backend.let_go()
                await eventually(lambda n=reached: len(backend.arrivals) == n)  # type: ignore[misc]
            backend.let_go()
            await eventually(lambda: len(statuses) == 5)
    assert backend.arrivals == ["holder", "ops-key", "enterprise-user", "pro-user", "free-user"]
    assert set(statuses.values()) == {200}
