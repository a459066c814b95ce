"""The entrypoint key `h2c`: where it is accepted, and the error at its line where it is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from a3s_gateway.compiler import compile_config


def _errors(tmp_path: Path, entrypoint: str) -> list[str]:
    path = tmp_path / "gw.hcl"
    path.write_text(f'entrypoints "web" {{\n{entrypoint}}}\n')
    result = compile_config([str(path)], {})
    return [
        f"{d.span.line}:{d.span.col}: {d.message}" if d.span else d.message
        for d in result.diagnostics
        if d.severity == "error"
    ]


TLS = '  address = "127.0.0.1:8443"\n  tls {\n    cert_file = "c.pem"\n    key_file = "k.pem"\n  }\n'


@pytest.mark.parametrize("value", ["auto", "prior-knowledge", "off"])
def test_every_mode_compiles_on_a_plain_entrypoint(tmp_path: Path, value: str) -> None:
    assert _errors(tmp_path, f'  address = "127.0.0.1:8080"\n  h2c = "{value}"\n') == []


@pytest.mark.parametrize("value", ["prior-knowledge", "off"])
def test_a_mode_on_a_tls_entrypoint_is_an_error_at_its_line(tmp_path: Path, value: str) -> None:
    errors = _errors(tmp_path, TLS + f'  h2c = "{value}"\n')
    assert len(errors) == 1
    assert errors[0].startswith("7:3: entrypoint 'web': h2c: only for plain entrypoints")
    assert "tls { alpn" in errors[0]  # where the choice is made on TLS


def test_the_default_written_out_on_a_tls_entrypoint_is_accepted(tmp_path: Path) -> None:
    assert _errors(tmp_path, TLS + '  h2c = "auto"\n') == []


def test_a_mode_on_a_tcp_entrypoint_is_an_error(tmp_path: Path) -> None:
    errors = _errors(tmp_path, '  address = "127.0.0.1:5432"\n  protocol = "tcp"\n  h2c = "off"\n')
    assert any(e.startswith("4:3: entrypoint 'web': h2c: only for HTTP entrypoints") for e in errors)


def test_an_unknown_mode_names_the_three(tmp_path: Path) -> None:
    errors = _errors(tmp_path, '  address = "127.0.0.1:8080"\n  h2c = "h2"\n')
    assert errors == ["3:3: entrypoint 'web': h2c: Input should be 'auto', 'prior-knowledge' or 'off'"]
