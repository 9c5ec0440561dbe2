"""Files replaced whole or not at all: a reader, a crash or a power cut sees
the old file or the complete new one, never a torn one.

One :func:`write_atomic` for the device (WAV recordings, clips) and for
training (checkpoints, run records), with the strongest guarantee any of
them needed. It lives here, importing only the standard library, so the
audio code and ``tools.train`` both take it without pulling PortAudio,
numpy-based WAV code or TensorFlow along.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def temp_beside(path: Path, mode: int = 0o644) -> Path:
    """A fresh empty file in ``path``'s folder (so a rename onto ``path`` is
    atomic), with ``mode`` from the start: a private file is never readable
    by others, not even for a moment."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return Path(tmp)


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in folder ``path`` survive a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_into_place(tmp: Path, path: Path) -> None:
    """Put the finished ``tmp`` (from :func:`temp_beside`) onto ``path``: its
    data reaches the disk before the rename, and the rename before we return.
    ``tmp`` is removed if that fails."""
    try:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(Path(path).parent)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data``, whole or not at all (see the module docstring)."""
    tmp = temp_beside(path, mode)
    try:
        tmp.write_bytes(data)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    move_into_place(tmp, path)
