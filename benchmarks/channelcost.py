"""CPU per webhook: a channel's verification and normalisation, in process, per platform.

    .venv/bin/python benchmarks/channelcost.py [--rounds 5] [--batch 2000]

Each platform verifies a request signed as its platform signs it (a fresh timestamp, a 500-byte
text) and builds the JSON body the agent gets; the gateway's own I/O (reading the body, the
upstream exchange) is the same as any proxied POST and is measured by cpucost.py. Rounds are
interleaved across the platforms; the process's CPU time per request is reported as the median
and the minimum of the rounds' batch averages.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from a3s_gateway.runtime.api import Headers, Request
from a3s_gateway.stdlib import registry
from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.channels import slack

TEXT = "x" * 500


def _build(kind: str, **options: object) -> object:
    found = registry.lookup("middleware", kind)
    assert found is not None
    ctx = BuildContext(f"middleware:{kind}", kind)
    config = found.config.model_validate(options)
    return found.impl(config, found.impl.new_state(config, ctx), ctx)


def cases(now: float) -> dict[str, Callable[[], object]]:
    ts = str(int(now))
    slack_body = json.dumps({
        "type": "event_callback", "event_id": "Ev1",
        "event": {"type": "message", "channel": "C1", "user": "U1", "text": TEXT, "ts": "1.2"},
    }).encode()  # fmt: skip
    tg_body = json.dumps(
        {"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1}, "text": TEXT}}
    ).encode()
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    dc_body = json.dumps({"type": 2, "id": "786008729715212338", "data": {"name": "ask", "options": [
        {"name": "q", "value": TEXT}]}}).encode()  # fmt: skip
    ms = str(int(now * 1000))
    dt_sign = base64.b64encode(hmac.new(b"s", f"{ms}\ns".encode(), hashlib.sha256).digest()).decode()
    dt_body = json.dumps({"msgId": "m", "msgtype": "text", "text": {"content": TEXT}}).encode()
    setups = {
        "slack": (_build("channel-slack", signing_secret="s"), slack_body, [
            ("x-slack-request-timestamp", ts), ("x-slack-signature", slack.signature("s", ts, slack_body))]),
        "telegram": (_build("channel-telegram", secret_token="t"), tg_body, [("x-telegram-bot-api-secret-token", "t")]),
        "discord": (_build("channel-discord", public_key=public), dc_body, [
            ("x-signature-timestamp", ts), ("x-signature-ed25519", key.sign(ts.encode() + dc_body).hex())]),
        "dingtalk": (_build("channel-dingtalk", app_secret="s"), dt_body, [("timestamp", ms), ("sign", dt_sign)]),
    }  # fmt: skip
    out = {}
    for name, (channel, body, headers) in setups.items():
        request = Request("POST", "/", Headers.from_pairs(headers))
        out[name] = lambda c=channel, r=request, b=body: c.verify(r, b, now).to_json()  # type: ignore[attr-defined]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    runs = cases(time.time())
    seen: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            start = time.process_time()
            for _ in range(args.batch):
                run()
            seen[name].append((time.process_time() - start) / args.batch * 1e6)
    for name, values in seen.items():
        print(f"{name:9} {statistics.median(values):7.1f} µs CPU per request (min {min(values):.1f})")


if __name__ == "__main__":
    main()
