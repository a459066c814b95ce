"""Each kind of configuration error: its message and its file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from a3s_gateway.compiler import compile_config


def _compile(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "gw.hcl"
    path.write_text(text)
    result = compile_config([str(path)], env or {})
    return [
        f"{d.span.line}:{d.span.col}: {d.severity}: {d.message}" if d.span else d.message
        for d in result.diagnostics
    ]


BASE = """entrypoints "web" { address = "127.0.0.1:8080" }
services "api" {
  load_balancer { servers = [{ url = "http://127.0.0.1:9000" }] }
}
"""


CASES = [
    pytest.param(
        BASE + 'routers "r" {\n  rule = "PathPrefix(`/`)"\n  service = "apii"\n}\n',
        "7:3: error: router 'r' uses unknown service 'apii'",
        id="unknown-service",
    ),
    pytest.param(
        BASE + 'routers "r" {\n  rule = "PathPrefix(`/`)"\n  service = "api"\n  middlewares = ["nope"]\n}\n',
        "8:18: error: router 'r' uses unknown middleware 'nope'",
        id="unknown-middleware",
    ),
    pytest.param(
        BASE + 'routers "r" {\n  rule = "PathPrefix(`/`)"\n  service = "api"\n  entrypoints = ["webb"]\n}\n',
        "8:18: error: router 'r' uses unknown entrypoint 'webb'",
        id="unknown-entrypoint",
    ),
    pytest.param(
        BASE + 'entrypoints "db" {\n  address = "127.0.0.1:5432"\n  protocol = "tcp"\n}\n'
        'routers "r" {\n  rule = "PathPrefix(`/`)"\n  service = "api"\n  entrypoints = ["web", "db"]\n}\n',
        "12:25: error: router 'r' is an HTTP router but entrypoint 'db' has protocol 'tcp'",
        id="wrong-protocol",
    ),
    pytest.param(
        BASE + 'entrypoints "web2" { address = "127.0.0.1:8080" }\n',
        "5:22: error: entrypoint 'web2' listens on 127.0.0.1:8080, which entrypoint 'web' already uses (127.0.0.1:8080)",
        id="duplicate-address",
    ),
    pytest.param(
        BASE
        + 'services "b" {\n  load_balancer { servers = [{ url = "http://x" }] }\n  failover { service = "c" }\n}\n'
        'services "c" {\n  load_balancer { servers = [{ url = "http://y" }] }\n  failover { service = "b" }\n}\n'
        'routers "r" {\n  rule = "PathPrefix(`/`)"\n  service = "b"\n}\n',
        "5:1: error: failover/mirror cycle: b -> c -> b",
        id="failover-cycle",
    ),
    pytest.param(
        BASE + 'routers "r" {\n  rule = "PathPrefix(`/`) &&"\n  service = "api"\n}\n',
        "6:29: error: router 'r': invalid rule:",
        id="rule-syntax",
    ),
    pytest.param(
        BASE + 'routers "r" {\n  rule = "PathPrefix(`/`)"\n  service = "api"\n  priorty = 3\n}\n',
        "8:3: error: unknown key 'priorty' in router 'r'",
        id="unknown-key",
    ),
    pytest.param(
        'entrypoints "web" { address = "8080" }\n',
        "1:21: error: entrypoint 'web': address: address must be host:port",
        id="bad-address",
    ),
    pytest.param(
        BASE + 'middlewares "m" { type = "rate-limitt" }\n',
        "5:19: error: middleware 'm': unknown middleware type 'rate-limitt'",
        id="unknown-middleware-type",
    ),
    pytest.param(
        BASE + 'routers "r" {\n  rule = "PathPrefix(`/`)"\n  service = "api"\n}\nservices "unused" {\n'
        '  load_balancer { servers = [{ url = "http://z" }] }\n}\n',
        "9:1: warning: service 'unused' is not used by any router",
        id="unused-service",
    ),
    pytest.param(
        'entrypoints "web" { address = "${ADDR}" }\n',
        "1:32: error: environment variable 'ADDR' is not set",
        id="unset-variable",
    ),
    pytest.param(
        BASE + 'services "r" {\n  load_balancer { servers = [{ url = "http://z" }] }\n'
        '  rollout { from = "v1"; to = "v2" }\n}\nrouters "x" {\n  rule = "PathPrefix(`/`)"\n  service = "r"\n}\n',
        "7:3: error: service 'r': rollout from 'v1' to 'v2' needs revisions named 'v1' and 'v2'",
        id="rollout-without-revisions",
    ),
    pytest.param(
        BASE
        + 'services "b" {\n  load_balancer {\n    strategy = "random"\n    random { weighted = true; bogus = 1 }\n'
        '    servers = [{ url = "http://z" }]\n  }\n}\n',
        "8:31: error: unknown key 'bogus' in service 'b': balancer 'random'",
        id="strategy-option-unknown",
    ),
    pytest.param(
        BASE + 'services "b" {\n  load_balancer {\n    strategy = "p2c"\n    ewma { decay = "5s" }\n'
        '    servers = [{ url = "http://z" }]\n  }\n}\n',
        "8:5: error: service 'b': a 'ewma' block configures balancer 'ewma', but strategy is 'p2c'",
        id="strategy-block-mismatch",
    ),
    pytest.param(
        BASE + 'services "api" {\n  load_balancer { servers = [{ url = "http://z" }] }\n}\n',
        "5:1: error: service 'api' is already defined at",
        id="duplicate-name",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_error_message_and_location(tmp_path: Path, text: str, expected: str) -> None:
    found = _compile(tmp_path, text)
    assert any(line.startswith(expected) for line in found), "\n".join(found)


def test_all_errors_are_reported_not_just_the_first(tmp_path: Path) -> None:
    found = _compile(
        tmp_path,
        BASE
        + 'routers "a" {\n  rule = "PathPrefix(`/`)"\n  service = "nope1"\n}\n'
        + 'routers "b" {\n  rule = "Pathh(`/`)"\n  service = "nope2"\n}\n',
    )
    errors = [line for line in found if ": error: " in line]
    assert len(errors) >= 3, found


def test_default_from_environment(tmp_path: Path) -> None:
    found = _compile(tmp_path, 'entrypoints "web" { address = "${ADDR:-127.0.0.1:8080}" }\n')
    assert not [line for line in found if ": error: " in line]


def test_an_unknown_top_level_key_is_one_error(tmp_path: Path) -> None:
    # Not also "unknown key 'settings' in settings": the top-level check already said it.
    found = _compile(tmp_path, BASE + 'settings { drain_timeout = "20s" }\ndrain_timeut = "5s"\n')
    assert [line for line in found if ": error: " in line] == [
        "5:1: error: unknown top-level block or setting 'settings'",
        "6:1: error: unknown top-level block or setting 'drain_timeut'",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'access_log {\n  filters { status_codes = ["500-400"] }\n}\n',
            ["6:13: error: settings: access_log.filters.status_codes: '500-400': the range is empty"],
        ),
        ("access_log {\n  pat = 1\n}\n", ["6:3: error: unknown key 'pat' in settings"]),
        ("access_log = 5\n", ["5:1: error: settings: access_log: Input should be a valid boolean"]),
    ],
    ids=["nested-value", "unknown-key", "not-a-block"],
)
def test_a_key_or_block_field_reports_only_what_was_written_at_its_line(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    # `access_log` is `true` or a block (bool | AccessLogConfig): pydantic reports both members'
    # errors, with the member's name in the location; only the member written is reported, at its key.
    got = _compile(tmp_path, BASE + text)
    errors = [e for e in got if ": error: " in e]
    assert len(errors) == len(expected), got
    assert all(e.startswith(x) for e, x in zip(errors, expected, strict=True)), got
