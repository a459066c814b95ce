"""llm-keys end to end: a Gateway with the middleware in front of a fake OpenAI/Anthropic upstream
(tests/llm_fakes.py), called with the real openai and anthropic SDKs and with httpx.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anthropic
import anyio
import httpx
import jwt as pyjwt
import openai
import pytest

from a3s_gateway.compiler import compile_config, render_text
from a3s_gateway.runtime.api import Headers, Request, Response, iter_body
from a3s_gateway.runtime.clock import ManualClock
from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.middlewares.llm_keys import LlmKeys, LlmKeysConfig

from ..llm_fakes import FakeLlm, fake_llm, gateway_hcl
from ..stubs import free_port, free_ports

pytestmark = pytest.mark.anyio

ALICE = "sk-alice-0123456789abcdef0123"
BOB = "sk-bob-0123456789abcdef01234567"


@asynccontextmanager
async def gateway(
    tmp_path: Path, options: str, chain: tuple[str, ...] = ("keys",), extra: str = "", **upstream: int
) -> AsyncIterator[tuple[int, FakeLlm, Gateway]]:
    """FakeLlm + a Gateway whose only router goes through `chain`, where "keys" is `llm-keys`
    configured with `options` (and `extra` defines the others)."""
    async with fake_llm(**upstream) as llm:
        port = free_port()
        path = tmp_path / "gateway.hcl"
        path.write_text(gateway_hcl(port, llm.url, options, chain=chain, extra=extra))
        async with Gateway(str(path)) as gw:
            try:
                yield port, llm, gw
            finally:
                await close_clients()


_CLIENTS: list[openai.AsyncOpenAI | anthropic.AsyncAnthropic] = []


def oai(port: int, key: str = ALICE) -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
    _CLIENTS.append(client)
    return client


def claude(port: int, key: str = ALICE) -> anthropic.AsyncAnthropic:
    client = anthropic.AsyncAnthropic(base_url=f"http://127.0.0.1:{port}", api_key=key, max_retries=0)
    _CLIENTS.append(client)
    return client


async def close_clients() -> None:
    """Close the SDK clients on the loop that opened them (their pools would outlive it)."""
    while _CLIENTS:
        await _CLIENTS.pop().close()


KEYS = f"""
  keys "alice" {{
    key    = "{ALICE}"
    models = ["gpt-4o*", "claude-*"]
  }}
  keys "bob" {{
    key     = "{BOB}"
    expires = "2020-01-01T00:00:00Z"
  }}
"""
MESSAGES = [{"role": "user", "content": "hi"}]


async def test_keys_are_checked_and_never_reach_the_upstream(tmp_path: Path) -> None:
    async with gateway(tmp_path, KEYS) as (port, llm, _gw):
        reply = await oai(port).chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
        assert reply.usage is not None and reply.usage.total_tokens == 15
        message = await claude(port).messages.create(
            model="claude-haiku-4-5", max_tokens=50, messages=MESSAGES
        )  # type: ignore[arg-type]
        assert message.usage.output_tokens == 5
        for seen in llm.seen:  # Bearer (openai) and x-api-key (anthropic) were both taken off
            assert "authorization" not in seen.headers and "x-api-key" not in seen.headers

        with pytest.raises(openai.AuthenticationError) as unknown:
            await oai(port, "sk-nobody-0123456789").chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
        assert unknown.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError) as expired:
            await oai(port, BOB).chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
        assert expired.value.code == "expired_api_key"
        with pytest.raises(anthropic.AuthenticationError) as refused:
            await claude(port, "sk-nobody-0123456789").messages.create(
                model="claude-haiku-4-5",
                max_tokens=5,
                messages=MESSAGES,  # type: ignore[arg-type]
            )
        assert refused.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
        async with httpx.AsyncClient() as client:
            missing = await client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={})
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"

        with pytest.raises(openai.PermissionDeniedError) as denied:
            await oai(port).chat.completions.create(model="o3-pro", messages=MESSAGES)  # type: ignore[arg-type]
        assert denied.value.code == "model_not_allowed"
        with pytest.raises(anthropic.PermissionDeniedError):
            await claude(port).messages.create(model="gemini-pro", max_tokens=5, messages=MESSAGES)  # type: ignore[arg-type]
        assert len(llm.seen) == 2  # nothing refused reached the upstream


async def test_tpm_counts_the_reported_usage_and_refuses_with_retry_after(tmp_path: Path) -> None:
    options = f"""
  keys "alice" {{
    key = "{ALICE}"
    tpm = 40
  }}
  bytes_per_token = 1000
"""
    # Each call reserves 1 (prompt estimate) + 5 (max_tokens) and settles at 10 + 5 = 15 tokens.
    async with gateway(tmp_path, options) as (port, _llm, gw):
        client = oai(port)
        for _ in range(3):  # 15, 30, 45: the third is admitted at 30 + 6 <= 40
            await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=5)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError) as limited:
            await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=5)  # type: ignore[arg-type]
        assert limited.value.code == "rate_limit_exceeded"
        assert 50 <= int(limited.value.response.headers["retry-after"]) <= 60
        await gw.reload()  # an unchanged node keeps its meters across a reload
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=5)  # type: ignore[arg-type]
        with pytest.raises(anthropic.RateLimitError) as also:
            await claude(port).messages.create(model="claude-x", max_tokens=5, messages=MESSAGES)  # type: ignore[arg-type]
        assert also.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
        assert "retry-after" in also.value.response.headers


async def test_openai_stream_usage_is_requested_metered_and_stripped(tmp_path: Path) -> None:
    options = f"""
  keys "alice" {{
    key    = "{ALICE}"
    budget = 30
  }}
  bytes_per_token = 1000
"""
    async with gateway(tmp_path, options) as (port, llm, _gw):
        client = oai(port)
        stream = await client.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            max_tokens=5,
        )
        chunks = [chunk async for chunk in stream]
        # The gateway asked for the usage chunk, and the client, who did not, never saw it.
        assert llm.seen[-1].body["stream_options"] == {"include_usage": True}
        assert (
            all(chunk.choices for chunk in chunks)
            and "".join(c.choices[0].delta.content or "" for c in chunks) == "word " * 5
        )
        stream = await client.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=5,
        )
        usage = [chunk.usage async for chunk in stream if chunk.usage is not None]
        assert len(usage) == 1 and usage[0].total_tokens == 15
        # 15 + 15 = 30 tokens spent: the budget is gone, and waiting does not bring it back.
        with pytest.raises(openai.RateLimitError) as spent:
            await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        assert spent.value.code == "insufficient_quota"
        assert "retry-after" not in spent.value.response.headers


async def test_anthropic_stream_usage_is_metered(tmp_path: Path) -> None:
    options = f"""
  keys "alice" {{
    key    = "{ALICE}"
    budget = 0.000045
    budget_unit = "usd"
  }}
  prices "claude-*" {{
    input  = 3
    output = 15
  }}
  bytes_per_token = 1000
"""
    # One call: 10 input tokens at $3/M + 5 output at $15/M = $0.000105, over the budget once.
    async with gateway(tmp_path, options, prompt_tokens=10, words=5) as (port, _llm, _gw):
        client = claude(port)
        async with client.messages.stream(model="claude-haiku", max_tokens=5, messages=MESSAGES) as stream:  # type: ignore[arg-type]
            text = await stream.get_final_text()
        assert text == "word " * 5
        with pytest.raises(anthropic.RateLimitError):
            await client.messages.create(model="claude-haiku", max_tokens=5, messages=MESSAGES)  # type: ignore[arg-type]
        with pytest.raises(anthropic.PermissionDeniedError):  # no price: a usd budget cannot meter it
            await client.messages.create(model="gpt-4o", max_tokens=5, messages=MESSAGES)  # type: ignore[arg-type]


async def test_user_and_global_limits_and_refunds(tmp_path: Path) -> None:
    options = f"""
  keys "alice" {{
    key = "{ALICE}"
  }}
  user_header = "X-User"
  limits = [{{ per = "user", rpm = 2 }}, {{ per = "model", tpm = 1000 }}]
"""
    async with gateway(tmp_path, options) as (port, llm, _gw):
        client = oai(port)
        for user in ("ann", "ann", "ben"):  # 15 tokens each
            await ask(client, 5, user)
        with pytest.raises(openai.RateLimitError) as limited:
            await ask(client, 5, "ann")
        assert "RPM limit reached (u)" in limited.value.message
        llm.status = 500  # an upstream error costs no tokens: each reservation (~410) is refunded
        for n in range(3):
            with pytest.raises(openai.InternalServerError):
                await ask(client, 400, f"u{n}")
        llm.status = 200
        await ask(client, 400, "cy")  # 45 + ~410 fits in 1000 only because the errors were refunded
        with pytest.raises(openai.RateLimitError) as model_limit:
            await ask(client, 950, "dee")  # 60 spent + ~990 reserved
        assert "TPM limit reached (m)" in model_limit.value.message


async def test_max_completion_tokens_is_reserved(tmp_path: Path) -> None:
    # The reservation counts OpenAI's max_completion_tokens as it counts max_tokens: with a small
    # default, only the requested maximum can push a request past the TPM limit.
    options = f'  keys "alice" {{\n    key = "{ALICE}"\n    tpm = 1000\n  }}\n  default_max_tokens = 10'
    async with gateway(tmp_path, options) as (port, llm, _gw):
        create = oai(port).chat.completions.create
        reply = await create(model="gpt-4o", messages=MESSAGES, max_completion_tokens=3)  # type: ignore[arg-type]
        assert reply.usage is not None and reply.usage.completion_tokens == 3
        assert llm.last.body["max_completion_tokens"] == 3
        with pytest.raises(openai.RateLimitError, match="TPM limit reached"):
            await create(model="gpt-4o", messages=MESSAGES, max_completion_tokens=2000)  # type: ignore[arg-type]


async def ask(client: openai.AsyncOpenAI, max_tokens: int, user: str) -> None:
    await client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=max_tokens,
        extra_headers={"x-user": user},
    )


async def test_a_completion_cache_behind_llm_keys_scopes_entries_by_key(tmp_path: Path) -> None:
    # llm-keys takes the client's credential off the request; a cache behind it (llm_scope
    # "key", the default) keys its entries by the key llm-keys checked instead of caching nothing.
    carol = "sk-carol-0123456789abcdef0123"
    options = f"""
  keys "alice" {{
    key = "{ALICE}"
  }}
  keys "carol" {{
    key = "{carol}"
  }}
"""
    cache = 'middlewares "completions" {\n  type = "cache"\n  llm  = true\n}\n'
    async with gateway(tmp_path, options, ("keys", "completions"), cache) as (port, llm, _gw):
        seen = []
        for key in (ALICE, ALICE, carol, carol):
            raw = await oai(port, key).chat.completions.with_raw_response.create(
                model="gpt-4o",
                messages=MESSAGES,  # type: ignore[arg-type]
                temperature=0,
            )
            seen.append(raw.headers.get("x-cache"))
        assert seen == ["MISS", "HIT", "MISS", "HIT"]  # each key its own entries
        assert len(llm.seen) == 2


async def test_bad_bodies_get_client_format_errors(tmp_path: Path) -> None:
    async with gateway(tmp_path, KEYS + '  max_body = "1KiB"') as (port, llm, _gw):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            headers = {"authorization": f"Bearer {ALICE}"}
            bad = await client.post("/v1/chat/completions", content=b"{nope", headers=headers)
            assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
            big = await client.post(
                "/v1/messages", json={"model": "claude-x", "pad": "x" * 2000}, headers=headers
            )
            assert big.status_code == 413 and big.json()["error"]["type"] == "request_too_large"
            models = await client.get("/v1/models", headers={"x-api-key": ALICE})
            assert models.status_code == 200
        assert [seen.target for seen in llm.seen] == ["/v1/models"]


def test_config_errors_point_at_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.hcl"
    path.write_text(
        """
entrypoints "web" {
  address = "127.0.0.1:1"
}
middlewares "keys" {
  type = "llm-keys"
  keys "alice" {
    key         = "short"
    budget_unit = "usd"
  }
  user_header = "X User"
}
"""
    )
    result = compile_config([str(path)])
    text = render_text(result.diagnostics)
    assert result.graph is None
    assert f"{path}:7:3: error: middleware 'keys' (llm-keys): keys.alice: a key shorter than 16" in text
    assert f"{path}:11:3: error: middleware 'keys' (llm-keys): user_header: invalid header name" in text


async def test_admin_api_creates_lists_and_revokes_keys_in_a_file(tmp_path: Path) -> None:
    store = tmp_path / "keys.json"
    options = f'{KEYS}\n  store_file = "{store}"'
    async with fake_llm() as llm:
        port, admin_port = free_ports(2)
        path = tmp_path / "gateway.hcl"
        api = f'api {{\n  address = "127.0.0.1:{admin_port}"\n}}'
        path.write_text(gateway_hcl(port, llm.url, options, extra=api))
        async with Gateway(str(path)), httpx.AsyncClient(base_url=f"http://127.0.0.1:{admin_port}") as admin:
            created = await admin.post(
                "/api/gateway/keys", json={"name": "carol", "models": ["gpt-*"], "tpm": 1000}
            )
            assert created.status_code == 201, created.text
            secret = created.json()["key"]
            assert secret.startswith("sk-a3s-") and len(secret) > 40
            on_disk = store.read_text()
            assert secret not in on_disk and json.loads(on_disk)["keys"][0]["name"] == "carol"
            assert not list(tmp_path.glob(".keys-*"))  # the temporary file was renamed over

            reply = await oai(port, secret).chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
            assert reply.choices[0].message.content

            answer = (await admin.get("/api/gateway/keys")).json()
            assert answer["statistics"]["admitted"] == 1 and answer["statistics"]["redis_errors"] == 0
            listed = answer["keys"]
            assert [k["name"] for k in listed] == ["alice", "bob", "carol"]
            assert all("digest" not in k and "key" not in k for k in listed)
            assert (await admin.post("/api/gateway/keys", json={"name": "carol"})).status_code == 409
            assert (await admin.post("/api/gateway/keys", json={"name": "d", "rpm": -1})).status_code == 400
            assert (await admin.delete("/api/gateway/keys/alice")).status_code == 409  # config key

            assert (await admin.get("/api/gateway/keys?middleware=nope")).status_code == 404
            assert (await admin.delete("/api/gateway/keys/carol/x")).status_code == 404
            assert (await admin.delete("/api/gateway/keys")).status_code == 405
            assert (await admin.post("/api/gateway/keys", content=b"[1]")).status_code == 400
            assert (await admin.delete("/api/gateway/keys/carol")).status_code == 200
            assert (await admin.delete("/api/gateway/keys/carol")).status_code == 404
            with pytest.raises(openai.AuthenticationError):
                await oai(port, secret).chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
            await close_clients()


@pytest.mark.parametrize("fail_open", [False, True])
async def test_redis_down_fails_closed_or_open_and_says_so(
    tmp_path: Path, fail_open: bool, caplog: pytest.LogCaptureFixture
) -> None:
    options = f"""
  keys "alice" {{
    key = "{ALICE}"
    tpm = 1000
  }}
  redis_url = "redis://127.0.0.1:{free_port()}/0"
  fail_open = {str(fail_open).lower()}
"""
    with caplog.at_level("WARNING"):
        async with gateway(tmp_path, options) as (port, llm, _gw):
            client = oai(port)
            for _ in range(3):
                if fail_open:  # a config key is known without Redis: let through, unmetered
                    await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
                else:
                    with pytest.raises(openai.InternalServerError) as refused:
                        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
                    assert refused.value.status_code == 503
            # A key that only Redis could know cannot be checked either way.
            with pytest.raises(openai.InternalServerError):
                await oai(port, "sk-a3s-unknown-0123456789").chat.completions.create(
                    model="gpt-4o", messages=MESSAGES
                )  # type: ignore[arg-type]
            assert len(llm.seen) == (3 if fail_open else 0)
    # One warning, then Redis is left alone for retry_interval (no timeout on every request).
    assert sum("redis unavailable" in r.getMessage() for r in caplog.records) == 1


async def test_user_from_a_jwt_claim_with_the_key_in_x_api_key(tmp_path: Path) -> None:
    secret = "a-jwt-hmac-secret-that-is-long-enough-for-hs256"
    options = f"""
  keys "alice" {{
    key = "{ALICE}"
  }}
  user_claim = "sub"
  limits = [{{ per = "user", rpm = 1 }}]
"""
    async with fake_llm() as llm:
        port = free_port()
        path = tmp_path / "gateway.hcl"
        user = f'middlewares "user" {{\n  type  = "jwt"\n  value = "{secret}"\n}}'
        path.write_text(gateway_hcl(port, llm.url, options, chain=("user", "keys"), extra=user))
        body = {"model": "claude-x", "max_tokens": 5, "messages": MESSAGES}
        async with Gateway(str(path)), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for user, status in (("ann", 200), ("ben", 200), ("ann", 429)):
                token = pyjwt.encode({"sub": user, "exp": 4_102_444_800}, secret, algorithm="HS256")
                headers = {"authorization": f"Bearer {token}", "x-api-key": ALICE}
                reply = await client.post("/v1/messages", json=body, headers=headers)
                assert reply.status_code == status, reply.text
            assert reply.json()["error"]["type"] == "rate_limit_error"
            assert all("authorization" not in seen.headers for seen in llm.seen)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_the_first_event_reaches_the_client_before_the_upstream_sends_the_second(
    tmp_path: Path, path: str
) -> None:
    options = f'  keys "alice" {{\n    key = "{ALICE}"\n    tpm = 100000\n  }}'
    async with gateway(tmp_path, options) as (port, llm, _gw):
        llm.gate = anyio.Event()  # the upstream holds the rest of the stream until the client has event 1
        body = {"model": "m", "max_tokens": 5, "stream": True, "messages": MESSAGES}
        headers = {"authorization": f"Bearer {ALICE}"}
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
            client.stream("POST", path, json=body, headers=headers) as reply,
        ):
            chunks = reply.aiter_raw()
            with anyio.fail_after(10):
                first = await chunks.__anext__()
            assert first.startswith(b"data: " if "chat" in path else b"event: message_start")
            llm.gate.set()
            rest = b"".join([chunk async for chunk in chunks])
        assert b"[DONE]" in rest or b"message_stop" in rest
        assert b'"usage": {' not in first + rest or "messages" in path  # OpenAI's usage chunk stripped


async def test_only_json_and_event_stream_answers_are_read() -> None:
    config = LlmKeysConfig.model_validate({"keys": {"alice": {"key": ALICE, "tpm": 1000}}})
    ctx = BuildContext("middleware:keys", "keys", ManualClock())
    middleware = LlmKeys(config, LlmKeys.new_state(config, ctx), ctx)
    audio = iter_body(b"ID3...")

    async def upstream(_request: Request) -> Response:
        return Response(200, Headers.from_pairs([("content-type", "audio/mpeg")]), audio)

    body = json.dumps({"model": "tts-1", "input": "hello"}).encode()
    request = Request(
        "POST",
        "/v1/audio/speech",
        Headers.from_pairs([("authorization", f"Bearer {ALICE}"), ("content-length", str(len(body)))]),
        iter_body(body),
        content_length=len(body),
    )
    response = await middleware(request, upstream)
    assert response.body is audio  # passed on untouched: no copy kept, no usage looked for
    assert request.state["llm_key"] == "alice"


async def test_keys_before_llm_convert_meter_the_converted_stream(tmp_path: Path) -> None:
    # An OpenAI client, an Anthropic upstream: llm-keys sees the OpenAI request and the converted
    # OpenAI stream; the usage chunk it asked for is made by the converter, counted, then removed.
    options = f'  keys "alice" {{\n    key    = "{ALICE}"\n    budget = 30\n  }}\n  bytes_per_token = 1000'
    convert = 'middlewares "convert" {\n  type     = "llm-convert"\n  client   = "openai"\n  upstream = "anthropic"\n}'
    async with gateway(tmp_path, options, ("keys", "convert"), convert) as (port, llm, _gw):
        client = oai(port)
        for _ in range(2):  # 10 + 5 tokens each
            stream = await client.chat.completions.create(
                model="claude-x",
                messages=MESSAGES,  # type: ignore[arg-type]
                stream=True,
                max_tokens=5,
            )
            chunks = [chunk async for chunk in stream]
            assert chunks and all(chunk.usage is None for chunk in chunks)
        assert llm.seen[-1].target == "/v1/messages" and "x-api-key" not in llm.seen[-1].headers
        with pytest.raises(openai.RateLimitError) as spent:
            await client.chat.completions.create(model="claude-x", messages=MESSAGES, max_tokens=5)  # type: ignore[arg-type]
        assert spent.value.code == "insufficient_quota"
