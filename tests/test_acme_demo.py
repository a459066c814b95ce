"""docs/tls.md's one command for a newcomer, `make acme-demo` (scripts/acme_demo.py): a local
pebble, examples/acme.hcl pointed at it, and a certificate served, for each challenge kind the
example's router can be switched to."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("challenge", ["http", "tls"])
def test_the_demo_gets_a_certificate(challenge: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "acme_demo.py"), "--once", "--challenge", challenge],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "certificate for app.localhost issued by pebble" in result.stdout, result.stdout
