"""A frame source that hangs in a read: the loop says so, reopens it, and stops feeding
the watchdog meanwhile; once frames flow again, the next fault starts from a short delay.

The stuck source is real: an image folder whose last "image" is a FIFO, which
blocks OpenCV's read forever, exactly like a camera whose read never returns.
The daemon runs in-process on a thread so the stall limit can be short.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.announce import build_announcer
from device.config import load
from device.loop import Daemon, RunOptions

ROOT = Path(__file__).resolve().parents[1]
STALL = 1.5


@pytest.fixture
def stuck_folder(tmp_path: Path):
    """Three grey frames, then a FIFO that no one writes to."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((96, 96, 3), 128, np.uint8))
    fifo = folder / "z.png"
    os.mkfifo(fifo)
    yield folder
    # Let readers of this process still blocked in open() go: a writer that comes and
    # leaves gives them EOF. None left (they were in a child that exited): ENXIO.
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def start_daemon(tmp_path: Path, source: Path, model: Path) -> tuple[Daemon, threading.Thread]:
    config = tmp_path / "config.toml"
    config.write_text(f'[camera]\nsource = "{source}"\n[model]\npath = "{model}"\n[log]\nstats_every = 60\n')
    cfg = load(config)
    daemon = Daemon(cfg, build_announcer(cfg, audio_out=tmp_path / "heard.wav"),
                    RunOptions(retry_forever=True, stall_after=STALL))
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    return daemon, thread


def stall_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("camera error: no frame")]


def wait_for_stalls(caplog, count: int, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while len(stall_lines(caplog)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return stall_lines(caplog)


def test_a_stuck_source_is_logged_reopened_and_starves_the_watchdog(tmp_path, stuck_folder, model_path,
                                                                    monkeypatch, caplog):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # a ping every 0.5 s while healthy
    caplog.set_level(logging.INFO, logger="facecue")
    daemon, thread = start_daemon(tmp_path, stuck_folder, model_path)
    pings: list[float] = []
    try:
        deadline = time.monotonic() + 60
        while len(stall_lines(caplog)) < 2 and time.monotonic() < deadline:
            try:
                if b"WATCHDOG=1" in sock.recv(4096):
                    pings.append(time.monotonic())
            except TimeoutError:
                pass
    finally:
        daemon.stop()
        thread.join(10)
        sock.close()
    assert not thread.is_alive()
    stalls = stall_lines(caplog)
    assert len(stalls) == 2 and daemon.frames_seen >= 6, stalls
    assert re.fullmatch(r"camera error: no frame from .*frames for 1.5s \(the source is stuck\); "
                        r"retrying in \d+s", stalls[0]), stalls[0]
    # Pings come every 0.5 s while frames flow and while waiting to reopen; each stuck
    # read left a hole of about the stall limit (no ping came between it and the line).
    gaps = np.diff(pings)
    assert (gaps > STALL - 0.6).sum() >= 1 and (gaps < 0.8).sum() >= 1, gaps
    # "camera problem" was spoken: the only sound on a timeline of faceless frames.
    with wave.open(str(tmp_path / "heard.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    assert np.abs(pcm).max() > 1000


def test_the_retry_delay_starts_over_once_frames_flow_again(tmp_path, stuck_folder, model_path, caplog):
    caplog.set_level(logging.INFO, logger="facecue")
    daemon, thread = start_daemon(tmp_path, stuck_folder, model_path)
    try:
        stalls = wait_for_stalls(caplog, 3, 60)
    finally:
        daemon.stop()
        thread.join(10)
    # Each reopen served frames before it stuck again: 1 s every time, never 1, 2, 4 ...
    assert len(stalls) >= 3, stalls
    delays = [int(re.search(r"retrying in (\d+)s", line)[1]) for line in stalls[:3]]
    assert delays == [1, 1, 1], stalls


def test_a_stuck_file_source_ends_a_foreground_run_with_one_line(tmp_path, stuck_folder):
    """Without --retry, `facecue run` on a source that hangs exits 1 after the default stall limit."""
    config = tmp_path / "config.toml"
    config.write_text("")
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "device.cli", "run", "--config", str(config), "--source",
                          str(stuck_folder), "--audio-out", str(tmp_path / "a.wav")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stderr.splitlines() == [f"facecue: error: no frame from {stuck_folder} for 5s (the source is stuck)"]
    assert time.monotonic() - start < 60
