"""The documentation is true: every config snippet compiles and every offline command runs.

Every ```hcl block of README.md and docs/*.md is compiled as `compile --check` would (a block that
is deliberately partial is marked by an HTML comment on the line before it, and is then only
required to parse). Every `a3s-gateway compile`, `graph` or `route` command in a ```sh block runs,
in a directory holding the page's snippets, and must exit 0. Markers:

    <!-- docs-test: fragment ... -->        the next block is part of a configuration: it must parse
    <!-- docs-test: fails ... -->           the next block is an example of an error: it must not compile
    <!-- docs-test: file NAME ... -->       the next block compiles and is saved as NAME for the commands
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from a3s_gateway.compiler import compile_config, render_text

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# What the snippets read from the environment (`${ADMIN_PASSWORD}` ...): set, as a user would.
ENV = {
    "ADMIN_PASSWORD": "pw",
    "JWT_SECRET": "s3cret",
    "GATEWAY_API_KEYS": "k1,k2",
    "OPENAI_API_KEY": "sk-openai",
    "ANTHROPIC_API_KEY": "sk-ant",
    # The channel webhooks' secrets (docs/agents.md).
    "SLACK_SIGNING_SECRET": "slack-secret",
    "TELEGRAM_SECRET_TOKEN": "telegram-token",
    "DISCORD_PUBLIC_KEY": "a" * 64,
    "FEISHU_VERIFICATION_TOKEN": "feishu-token",
    "FEISHU_ENCRYPT_KEY": "feishu-key",
    "DINGTALK_APP_SECRET": "dingtalk-secret",
    "WECOM_TOKEN": "wecom-token",
    "WECOM_ENCODING_AES_KEY": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
    "WEBCHAT_JWT_SECRET": "webchat-secret",
    "AGENT_URL": "http://127.0.0.1:9000",
}
# Commands safe to run offline: they only read configuration.
OFFLINE = re.compile(r"^a3s-gateway (compile|graph|route)\b")
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
_MARKER = re.compile(r"<!-- docs-test: (fragment|fails|file) ?(\S*)[^>]*-->\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    text: str
    marker: str | None
    argument: str

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def _blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    out = []
    for match in _BLOCK.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = _MARKER.search(before)
        line = text[: match.start()].count("\n") + 1
        kind, argument = (marker.group(1), marker.group(2)) if marker else (None, "")
        out.append(Block(page, line, match.group(1), match.group(2), kind, argument))
    return out


HCL = [b for page in PAGES for b in _blocks(page) if b.lang == "hcl"]
COMMANDS = [
    (b, line.strip())
    for page in PAGES
    for b in _blocks(page)
    if b.lang in ("sh", "bash", "shell", "console")
    for line in b.text.splitlines()
    if OFFLINE.match(line.strip())
]


@pytest.mark.parametrize("block", HCL, ids=str)
def test_config_snippet_compiles(block: Block, tmp_path: Path) -> None:
    path = tmp_path / (block.argument or "snippet.hcl")
    path.write_text(block.text)
    result = compile_config([str(path)], ENV)
    report = render_text(result.diagnostics, result.sources)
    if block.marker == "fragment":
        assert not [d for d in result.diagnostics if d.code in ("syntax", "literal")], report
    elif block.marker == "fails":
        assert result.graph is None, f"{block} is marked as failing but compiles"
    else:
        assert result.graph is not None, f"{block} does not compile (mark it if it is partial):\n{report}"


@pytest.mark.parametrize(("block", "command"), COMMANDS, ids=lambda v: str(v) if isinstance(v, Block) else "")
def test_offline_command_runs(block: Block, command: str, tmp_path: Path) -> None:
    for other in _blocks(block.page):
        if other.marker == "file":
            (tmp_path / other.argument).write_text(other.text)
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, **ENV, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""), "NO_COLOR": "1"}
    if "| dot " in command and shutil.which("dot") is None:
        pytest.fail("graphviz 'dot' is not installed: make test installs it (scripts/install-test-deps.sh)")
    out = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, f"{block}: `{command}` exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
    assert "Traceback" not in out.stderr


def test_the_docs_have_snippets_and_commands() -> None:
    assert len(HCL) >= 20 and len(COMMANDS) >= 4
    assert all(b.argument for b in HCL if b.marker == "file")
