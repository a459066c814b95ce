"""The compiler CLI as users run it: a subprocess, exit codes, output formats, no tracebacks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.hcl"
MIRRORING = ROOT / "examples" / "mirroring.hcl"


def run(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [_exe(), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
        input=stdin,
    )


def _exe() -> str:
    exe = Path(sys.executable).parent / "a3s-gateway"
    return str(exe) if exe.exists() else shutil.which("a3s-gateway") or "a3s-gateway"


def _web_api(path: Path, blocks: str, more: str = "") -> Path:
    """Write a configuration: entrypoint `web`, then `blocks` (the routers), service `api`, then
    `more` (in this order: some tests check line numbers)."""
    path.write_text(
        'entrypoints "web" { address = "127.0.0.1:8080" }\n'
        + blocks
        + 'services "api" {\n  load_balancer { servers = [{ url = "http://127.0.0.1:9000" }] }\n}\n'
        + more
    )
    return path


def _bad_config(tmp_path: Path) -> Path:
    path = tmp_path / "bad.hcl"
    path.write_text(
        'entrypoints "web" { address = "127.0.0.1:8080" }\n'
        'routers "r" {\n  rule = "PathPrefix(`/`)"\n  service = "missing"\n}\n'
        'routers "s" {\n  rule = "Pathh(`/`)"\n  service = "missing2"\n}\n'
    )
    return path


def test_check_valid_config_exits_0() -> None:
    result = run("compile", "--check", str(QUICKSTART))
    assert result.returncode == 0, result.stderr


def test_check_reports_every_error_with_location(tmp_path: Path) -> None:
    path = _bad_config(tmp_path)
    result = run("compile", "--check", str(path))
    assert result.returncode == 1
    assert f"{path}:4:3: error: router 'r' uses unknown service 'missing'" in result.stderr
    assert f"{path}:7:" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_check_json_format(tmp_path: Path) -> None:
    result = run("compile", "--check", "--format", "json", str(_bad_config(tmp_path)))
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["errors"] >= 2
    first = doc["diagnostics"][0]
    assert {"file", "line", "col", "message", "severity"} <= first.keys()


def test_color_only_when_asked(tmp_path: Path) -> None:
    path = _bad_config(tmp_path)
    assert "\x1b[" not in run("compile", "--check", str(path)).stderr
    assert "\x1b[" in run("compile", "--check", "--color", "always", str(path)).stderr


def test_usage_errors_exit_2() -> None:
    assert run("compile").returncode == 2
    assert run("frobnicate").returncode == 2
    assert run().returncode == 2


@pytest.mark.parametrize(
    "content",
    [
        "",
        "\x00\xff garbage {{{",
        'entrypoints "x" {',
        "a = ${",
        'routers "r" { rule = 5 }',
        "\ufeff" + "x = [" * 50,
    ],
)
def test_no_traceback_for_any_input(tmp_path: Path, content: str) -> None:
    path = tmp_path / "fuzz.hcl"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    result = run("compile", "--check", str(path))
    assert result.returncode in (0, 1)
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_file_is_a_diagnostic(tmp_path: Path) -> None:
    result = run("compile", "--check", str(tmp_path / "nope.hcl"))
    assert result.returncode == 1
    assert "nope.hcl" in result.stderr and "Traceback" not in result.stderr


def test_emit_ir_is_byte_identical_across_runs() -> None:
    first = run("compile", "--emit", "ir", str(MIRRORING))
    second = run("compile", "--emit", "ir", str(MIRRORING))
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    doc = json.loads(first.stdout)
    ids = [n["id"] for n in doc["nodes"]]
    assert ids == sorted(ids)
    assert "service:llm-candidate" in ids and "router:chat" in ids


def test_graph_dot_renders_with_graphviz(tmp_path: Path) -> None:
    dot = shutil.which("dot")
    if dot is None:
        pytest.fail("graphviz 'dot' is not installed: make test installs it (scripts/install-test-deps.sh)")
    result = run("graph", "--dot", str(MIRRORING))
    assert result.returncode == 0, result.stderr
    assert '"router:chat" -> "service:llm-stable"' in result.stdout
    rendered = subprocess.run([dot, "-Tsvg"], input=result.stdout, capture_output=True, text=True, timeout=30)
    assert rendered.returncode == 0, rendered.stderr
    assert "<svg" in rendered.stdout and "llm&#45;candidate" in rendered.stdout


def test_graph_dot_labels_render_as_separate_lines(tmp_path: Path) -> None:
    r"""A label is several lines in the picture, not one with a literal `\n`; a rule's `\` survives."""
    dot = shutil.which("dot")
    if dot is None:
        pytest.fail("graphviz 'dot' is not installed: make test installs it (scripts/install-test-deps.sh)")
    config = _web_api(
        tmp_path / "gw.hcl",
        'routers "api" {\n  rule = "PathRegexp(`^/v[0-9]\\\\.x`)"\n  service = "api"\n}\n',
    )
    result = run("graph", "--dot", str(config))
    assert result.returncode == 0, result.stderr
    plain = subprocess.run([dot, "-Tplain"], input=result.stdout, capture_output=True, text=True, timeout=30)
    assert plain.returncode == 0, plain.stderr
    labels = _plain_labels(plain.stdout)
    assert labels["router:api"] == ["router: api", r"PathRegexp(`^/v[0-9]\.x`)", "priority 25"]
    assert labels["entrypoint:web"] == ["entrypoint: web", "127.0.0.1:8080"]
    assert labels["service:api"] == ["service: api"]


def _plain_labels(plain: str) -> dict[str, list[str]]:
    r"""Each node's label from `dot -Tplain`, as the lines Graphviz draws.

    -Tplain prints a label as a quoted string in which `\n` is a line break and `\\` a backslash.
    """
    labels: dict[str, list[str]] = {}
    for line in plain.splitlines():
        if not line.startswith("node "):
            continue
        name, rest = line[len('node "') :].split('" ', 1)
        quoted = rest.split(" ", 4)[4]  # after x, y, width, height
        text, index = [""], 1
        while quoted[index] != '"':
            char = quoted[index]
            if char == "\\":
                index += 1
                char = quoted[index]
                if char == "n":
                    text.append("")
                    index += 1
                    continue
            text[-1] += char
            index += 1
        labels[name] = text
    return labels


def _routes(tmp_path: Path, *, tcp: bool = False) -> Path:
    more = 'middlewares "hdr" { type = "headers"; request_headers = { "X-From" = "gw" } }\n'
    if tcp:
        more += (
            'entrypoints "tls" {\n  address = "127.0.0.1:8443"\n  protocol = "tcp"\n}\n'
            'tcp_routers "db" {\n  rule = "HostSNI(`db.example.com`)"\n  service = "db"\n'
            "  tls { passthrough = true }\n}\n"
            'tcp_routers "plain" {\n  rule = "HostSNI(`*`)"\n  service = "db"\n}\n'
            'services "db" {\n  load_balancer { servers = [{ address = "127.0.0.1:5432" }] }\n}\n'
        )
    return _web_api(
        tmp_path / "routes.hcl",
        'routers "api" {\n  rule = "Host(`api.example.com`) && PathPrefix(`/v1`)"\n  service = "api"\n'
        '  middlewares = ["hdr"]\n}\n'
        'routers "admin" {\n  rule = "Header(`X-Admin`, `1`)"\n  service = "api"\n  priority = 1000\n}\n',
        more,
    )


def test_route_dry_run(tmp_path: Path) -> None:
    path = str(_routes(tmp_path))
    hit = run("route", "--config", path, "GET", "http://api.example.com/v1/chat")
    assert hit.returncode == 0, hit.stderr
    assert "router:      api" in hit.stdout and "hdr (headers)" in hit.stdout
    admin = run(
        "route",
        "--config",
        path,
        "--format",
        "json",
        "GET",
        "http://api.example.com/v1/x",
        "-H",
        "X-Admin: 1",
    )
    assert json.loads(admin.stdout)["router"] == "admin"
    miss = run("route", "--config", path, "GET", "http://other.example.com/")
    assert miss.returncode == 1 and miss.stdout.strip() == "no route"


@pytest.mark.parametrize(
    ("args", "router"),
    [
        (["--sni", "db.example.com"], "db"),
        (["--sni", "DB.example.com", "--alpn", "h2"], "db"),
        (["--sni", "other.example.com"], None),  # a TLS client: only routers with tls apply
        ([], "plain"),  # a plaintext client: only routers without tls apply
        (["--tls"], None),  # TLS without SNI
    ],
)
def test_route_tcp_splits_tls_and_plaintext_routers_as_the_runtime(
    tmp_path: Path, args: list[str], router: str | None
) -> None:
    """The TCP runtime (runtime/l4/routes.py) routes the same way; tests/test_tcp_routing.py."""
    path = _routes(tmp_path, tcp=True)
    out = run("route", "--config", str(path), "--format", "json", "--tcp", *args)
    assert "Traceback" not in out.stderr
    if router is None:
        assert out.returncode == 1 and json.loads(out.stdout) == {"route": None}
    else:
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["router"] == router


def _wildcards(tmp_path: Path) -> Path:
    return _web_api(
        tmp_path / "wildcards.hcl",
        'routers "wild" {\n  rule = "Host(`*.example.com`) /* v3.7 */"\n  service = "api"\n}\n'
        'routers "apex" {\n  rule = "Host(`example.com`)"\n  service = "api"\n}\n'
        'routers "get" {\n  rule = "Method(`get`) && PathPrefix(`/m`)"\n  service = "api"\n'
        "  priority = 5000\n}\n"
        'routers "any" {\n  rule = "Host(`*`)"\n  service = "api"\n  priority = 1\n}\n',
    )


@pytest.mark.parametrize(
    ("method", "url", "router"),
    [
        ("GET", "http://a.example.com/", "wild"),
        ("GET", "http://A.Example.COM./x", "wild"),
        ("GET", "http://a.b.example.com/", "any"),  # `*.` is one label
        ("GET", "http://example.com/", "apex"),  # and not the apex
        ("GET", "http://other.test/m", "get"),  # Method(`get`) is GET
        ("get", "http://other.test/m", "any"),  # a request sent as `get` matches no Method
    ],
)
def test_route_agrees_with_the_wildcard_matchers(tmp_path: Path, method: str, url: str, router: str) -> None:
    result = run("route", "--config", str(_wildcards(tmp_path)), "--format", "json", method, url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["router"] == router


# HostSNI's wildcards and values are checked on the matchers themselves, in tests/test_rules_tcp.py.


def test_rules_traefik_runs_compile_with_a_warning(tmp_path: Path) -> None:
    path = _web_api(
        tmp_path / "v2.hcl",
        'routers "r" {\n  rule = "PathRegexp(`/users/{id:[0-9]+}`)"\n  service = "api"\n}\n',
    )
    result = run("compile", "--check", str(path))
    assert result.returncode == 0, result.stderr
    assert "warning: router 'r': rule: PathRegexp: `{name:pattern}` templates are Traefik v2 syntax" in (
        result.stderr
    )
    assert "write PathRegexp(`^/users/([0-9]+)$`)" in result.stderr


def test_emit_ir_never_prints_secrets(tmp_path: Path) -> None:
    path = _web_api(
        tmp_path / "secrets.hcl",
        'routers "r" {\n  rule = "PathPrefix(`/`)"\n  service = "api"\n  middlewares = ["j", "k", "b"]\n}\n',
        'middlewares "j" { type = "jwt"; value = "jwt-topsecret" }\n'
        'middlewares "k" { type = "api-key"; keys = ["sk-live-123"] }\n'
        'middlewares "b" { type = "basic-auth"; username = "u"; password = "pw-plain" }\n',
    )
    out = run("compile", "--emit", "ir", str(path))
    assert out.returncode == 0, out.stderr
    for secret in ("jwt-topsecret", "sk-live-123", "pw-plain"):
        assert secret not in out.stdout
    assert out.stdout.count("<redacted:") == 3


def test_emit_ir_hides_credential_named_headers_and_executor_variables(tmp_path: Path) -> None:
    """Free-form maps (headers, an executor's options) hide the entries whose name names a
    credential, and show the rest; a typed option is judged by its mark, not its name."""
    path = tmp_path / "maps.hcl"
    path.write_text(
        'entrypoints "web" { address = "127.0.0.1:8080" }\n'
        'routers "r" {\n  rule = "PathPrefix(`/`)"\n  service = "api"\n  middlewares = ["h"]\n}\n'
        'middlewares "h" {\n  type = "headers"\n'
        '  request_headers = { Authorization = "Bearer sk-in-header", X-Team = "infra" }\n}\n'
        'services "api" {\n  load_balancer {\n    servers = [{ url = "http://127.0.0.1:9000" }]\n'
        '    sticky { cookie = "gw_affinity" }\n  }\n'
        '  scaling {\n    executor = "process"\n    process {\n      command = "srv --port {port}"\n'
        '      env = { HF_TOKEN = "hf-in-env", CUDA_VISIBLE_DEVICES = "0" }\n    }\n  }\n}\n'
    )
    out = run("compile", "--emit", "ir", str(path))
    assert out.returncode == 0, out.stderr
    for secret in ("sk-in-header", "hf-in-env"):
        assert secret not in out.stdout
    assert '"Authorization": "<redacted:' in out.stdout and '"HF_TOKEN": "<redacted:' in out.stdout
    for shown in ('"infra"', '"gw_affinity"', '"0"'):
        assert shown in out.stdout


def test_route_reads_the_target_as_run_does(tmp_path: Path) -> None:
    """The dry run normalises the path and checks Host with the runtime's code
    (compiler/request_target.py); the absolute URL's authority is the Host (RFC 9112 §3.2.2)."""
    path = _web_api(
        tmp_path / "paths.hcl",
        'entrypoints "raw" {\n  address = "127.0.0.1:8081"\n'
        "  http {\n    encoded_characters { allow_encoded_slash = true }\n    sanitize_path = false\n  }\n}\n"
        'routers "admin" {\n  rule = "PathPrefix(`/admin`)"\n  service = "api"\n}\n'
        'routers "a" {\n  rule = "Host(`a.example`)"\n  service = "api"\n  priority = 1000\n}\n'
        'routers "all" {\n  rule = "PathPrefix(`/`)"\n  service = "api"\n}\n',
    )
    config = ["route", "--config", str(path)]
    web = [*config, "--entrypoint", "web", "--format", "json"]
    hit = run(*web, "GET", "http://gw.test/public/%2e%2E/admin/x?q=/../")
    assert hit.returncode == 0, hit.stderr
    assert json.loads(hit.stdout)["router"] == "admin"
    assert json.loads(hit.stdout)["target"] == "/admin/x?q=/../"
    refused = run(*web, "GET", "http://gw.test/a%2fb")
    assert refused.returncode == 1
    assert json.loads(refused.stdout) == {
        "route": None,
        "status": 400,
        "error": "an encoded slash (%2F) in the request path",
    }
    text = run(*config, "--entrypoint", "web", "GET", "http://gw.test/public\\..\\admin")
    assert text.returncode == 1 and text.stdout.startswith("refused: 400 ")
    assert run(*config, "--entrypoint", "web", "GET", "http://a,b/").returncode == 1
    # The URL's authority wins over a Host header; a bare path takes the header's.
    assert json.loads(run(*web, "GET", "http://a.example/x", "-H", "Host: b.example").stdout)["router"] == "a"
    assert json.loads(run(*web, "GET", "/x", "-H", "Host: a.example").stdout)["router"] == "a"
    # The other entrypoint keeps what this one refuses or rewrites.
    raw = run(*config, "--entrypoint", "raw", "--format", "json", "GET", "http://gw.test/a%2fb/../c")
    assert json.loads(raw.stdout)["target"] == "/a%2Fb/../c"
    # The two entrypoints read paths differently: the dry run needs to know which one.
    ambiguous = run(*config, "GET", "http://gw.test/x")
    assert ambiguous.returncode == 2 and "--entrypoint" in ambiguous.stderr
