"""runtime/atomic_file.py: a file replaced whole, mode 0600 from its creation, or left as it was."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from a3s_gateway.runtime.atomic_file import replacing


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("durable", [False, True])
def test_the_new_file_replaces_the_old_whole_and_private(tmp_path: Path, durable: bool) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    target.chmod(0o644)
    previous = os.umask(0)  # mkstemp's 0600 does not depend on the umask's kindness
    try:
        with open(target, "rb") as reader:
            with replacing(str(target), durable=durable) as fh:
                fh.write(b"new ")
                # Midway, the target is still the old file, and the new one is private already.
                assert target.read_bytes() == b"old"
                (temporary,) = [p for p in tmp_path.iterdir() if p != target]
                assert temporary.name.startswith(".state.json.") and temporary.name.endswith(".tmp")
                assert _mode(temporary) == 0o600
                fh.write(b"content")
            assert reader.read() == b"old"  # its reader keeps the old file: renamed over, not rewritten
    finally:
        os.umask(previous)
    assert target.read_bytes() == b"new content" and _mode(target) == 0o600
    assert list(tmp_path.iterdir()) == [target]


def test_a_failed_write_leaves_the_target_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "graph.pickle"
    target.write_bytes(b"old")
    with pytest.raises(ValueError), replacing(str(target)) as fh:
        fh.write(b"half")
        raise ValueError("the serializer failed")
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]


def test_a_new_target_is_created_and_a_missing_folder_is_an_oserror(tmp_path: Path) -> None:
    with replacing(str(tmp_path / "new")) as fh:
        fh.write(b"x")
    assert (tmp_path / "new").read_bytes() == b"x" and _mode(tmp_path / "new") == 0o600
    with pytest.raises(OSError), replacing(str(tmp_path / "missing" / "file")) as fh:
        fh.write(b"x")


def test_the_rename_failing_removes_the_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "folder"
    target.mkdir()  # a file cannot be renamed over a folder: os.replace raises
    with pytest.raises(OSError), replacing(str(target)) as fh:
        fh.write(b"x")
    assert list(tmp_path.iterdir()) == [target] and target.is_dir()
