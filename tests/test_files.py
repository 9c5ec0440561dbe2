"""write_atomic: the old file or the whole new one, on disk before it returns."""
from __future__ import annotations

import os
import stat

import pytest

from core import files
from core.files import write_atomic


def test_the_file_is_replaced_whole_with_its_mode_and_no_temp_left(tmp_path):
    target = tmp_path / "key.pem"
    target.write_bytes(b"old")
    write_atomic(target, b"new secret", mode=0o600)
    assert target.read_bytes() == b"new secret"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    write_atomic(target, b"public")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"]


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        write_atomic(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_data_then_rename_then_folder_reach_the_disk_in_that_order(tmp_path, monkeypatch):
    steps: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        steps.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src, dst) -> None:
        steps.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.os, "replace", replace)
    write_atomic(tmp_path / "a.wav", b"RIFF")
    assert steps == ["fsync file", "replace", "fsync dir"]


def test_a_missing_folder_is_an_oserror_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        write_atomic(tmp_path / "nowhere" / "a.wav", b"RIFF")
