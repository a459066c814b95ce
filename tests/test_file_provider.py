"""The file provider: `providers { file { directory } }` loads a directory's *.hcl, and `--watch`
reloads when a file there is added, changed or removed (compiler/file_provider.py, runtime/watch.py)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from a3s_gateway.compiler import compile_config
from a3s_gateway.compiler.schema import Settings

from .stubs import free_port
from .test_cli_run import Running, run_gateway, status, wait_for

__all__ = ["run_gateway"]  # the fixture, imported for its use below

SERVICE = 'services "{name}" {{\n  load_balancer {{ servers = [{{ url = "demo://{name}" }}] }}\n}}\n'


def _router(name: str, rule: str, service: str) -> str:
    return f'routers "{name}" {{\n  rule    = "{rule}"\n  service = "{service}"\n}}\n'


def _main(port: int, provider: str) -> str:
    return (
        f'entrypoints "web" {{ address = "127.0.0.1:{port}" }}\n'
        + _router("llm", "PathPrefix(`/v1`)", "llm")
        + SERVICE.format(name="llm")
        + f"providers {{\n  file {{ {provider} }}\n}}\n"
    )


def _errors(paths: list[Path]) -> list[str]:
    result = compile_config([str(p) for p in paths], {})
    return [f"{d.span}: {d.message}" for d in result.diagnostics.errors]


def test_the_directory_is_merged_with_the_main_configuration(tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    conf.mkdir()
    (conf / "b-router.hcl").write_text(_router("probe", "Path(`/health`)", "probe"))
    (conf / "a-service.hcl").write_text(SERVICE.format(name="probe"))
    (conf / "notes.txt").write_text("not configuration")
    main = tmp_path / "gw.hcl"
    main.write_text(_main(8080, 'directory = "conf.d"'))  # relative to gw.hcl, not to the cwd
    result = compile_config([str(main)], {})
    assert result.graph is not None, _errors([main])
    assert {"router:probe", "service:probe", "router:llm"} <= {n.id for n in result.graph.nodes}
    assert set(result.graph.sources) == {str(main), str(conf / "a-service.hcl"), str(conf / "b-router.hcl")}
    settings = result.graph.settings
    assert isinstance(settings, Settings) and settings.providers and settings.providers.file
    assert settings.providers.file.directory == str(conf)


def test_a_filename_is_loaded_too(tmp_path: Path) -> None:
    (tmp_path / "extra.hcl").write_text(
        _router("probe", "Path(`/health`)", "probe") + SERVICE.format(name="probe")
    )
    main = tmp_path / "gw.hcl"
    main.write_text(_main(8080, 'filename = "extra.hcl"'))
    result = compile_config([str(main)], {})
    assert result.graph is not None and result.graph.node("router:probe") is not None


def test_a_missing_directory_is_an_error_at_its_line(tmp_path: Path) -> None:
    main = tmp_path / "gw.hcl"
    main.write_text(_main(8080, 'directory = "nowhere"'))
    assert _errors([main]) == [f"{main}:10:22: file provider: '{tmp_path / 'nowhere'}' is not a directory"]


def test_a_name_defined_in_both_places_is_an_error_naming_both(tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    conf.mkdir()
    (conf / "dup.hcl").write_text(SERVICE.format(name="llm"))
    main = tmp_path / "gw.hcl"
    main.write_text(_main(8080, 'directory = "conf.d"'))
    assert _errors([main]) == [f"{conf / 'dup.hcl'}:1:1: service 'llm' is already defined at {main}:6:1"]


def test_a_loaded_file_cannot_configure_the_provider_again(tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    conf.mkdir()
    (conf / "more.hcl").write_text('providers {\n  file { filename = "x.hcl" }\n}\n')
    main = tmp_path / "gw.hcl"
    main.write_text(_main(8080, 'directory = "conf.d"'))
    assert _errors([main]) == [f"{conf / 'more.hcl'}:2:3: 'file' is already defined at {main}:10:3"]


def _host_status(port: int, host: str) -> int:
    return httpx.get(f"http://127.0.0.1:{port}/health", headers={"host": host}, timeout=2).status_code


def _everywhere(port: int, host: str, code: int) -> bool:
    """`host` gets `code` on ten new connections in a row. With two workers, each reloads on its own
    SIGHUP, so for a moment one serves the new configuration and the other the old; the kernel
    spreads new connections over both, so ten in a row reach both all but certainly."""
    return all(_host_status(port, host) == code for _ in range(10))


@pytest.mark.parametrize("workers", ["1", "2"])
def test_watch_reloads_when_a_file_in_the_directory_is_added_changed_or_removed(
    tmp_path: Path, run_gateway: Callable[..., Running], workers: str
) -> None:
    port, conf, main = free_port(), tmp_path / "conf.d", tmp_path / "gw.hcl"
    conf.mkdir()
    (conf / "probe-service.hcl").write_text(SERVICE.format(name="probe"))
    main.write_text(_main(port, 'directory = "conf.d"'))
    gateway = run_gateway("--config", str(main), "--watch", "--workers", workers)
    wait_for(lambda: status(port, "/v1/models") == 200, what="the gateway to serve")
    wait_for(lambda: gateway.logged(str(conf)), what="the watcher on the provider's directory")
    # Polled: with two workers, one connection was once refused here (under investigation; see
    # the closing note of issue 13's stop), which is not what this test is about.
    wait_for(lambda: _everywhere(port, "a.example", 404), what="a.example unrouted")

    added = conf / "probe-router.hcl"
    added.write_text(_router("probe", "Host(`a.example`)", "probe"))
    wait_for(lambda: _everywhere(port, "a.example", 200), what="the reload after a file was added")

    replacement = conf / ".probe-router.hcl.tmp"  # saved as editors do: a new file renamed over
    replacement.write_text(_router("probe", "Host(`b.example`)", "probe"))
    replacement.replace(added)
    # Every worker has reloaded only once both hold: until then one may still route a.example.
    wait_for(
        lambda: _everywhere(port, "b.example", 200) and _everywhere(port, "a.example", 404),
        what="the reload after a file changed",
    )

    added.unlink()
    wait_for(lambda: _everywhere(port, "b.example", 404), what="the reload after a file was removed")
    assert status(port, "/v1/models") == 200
    gateway.proc.send_signal(signal.SIGTERM)
    assert gateway.proc.wait(timeout=20) == 0


def test_watch_false_leaves_the_directory_unwatched(
    tmp_path: Path, run_gateway: Callable[..., Running]
) -> None:
    port, conf, main = free_port(), tmp_path / "conf.d", tmp_path / "gw.hcl"
    conf.mkdir()
    (conf / "probe-service.hcl").write_text(SERVICE.format(name="probe"))
    main.write_text(_main(port, 'directory = "conf.d"; watch = false'))
    gateway = run_gateway("--config", str(main), "--watch")
    wait_for(lambda: status(port, "/v1/models") == 200, what="the gateway to serve")
    wait_for(lambda: gateway.logged("watching"), what="the watcher")
    assert not any("watching" in line and str(conf) in line for line in gateway.lines)
    # A change of the main file still reloads, and picks the directory's files up then.
    (conf / "probe-router.hcl").write_text(_router("probe", "Path(`/health`)", "probe"))
    main.write_text(_main(port, 'directory = "conf.d"; watch = false') + "\n")
    wait_for(lambda: status(port, "/health") == 200, what="the reload of the main file")
    gateway.proc.send_signal(signal.SIGTERM)
    assert gateway.proc.wait(timeout=20) == 0
