"""A frame source that hangs in a read: the loop says so, reopens it, and stops feeding
the watchdog meanwhile; once frames flow again, the next fault starts from a short delay.

The stuck source is real: a named pipe given as the source, into which a writer
thread puts a real MJPG video made by OpenCV, but only its header and first four
frames, and then keeps the pipe open without writing more. OpenCV opens the stream,
decodes the four frames and then blocks in its read, exactly like a camera whose read
never returns. (A FIFO inside an image folder no longer serves: a folder's images are
its regular files only.) Each open of the pipe is a new pipe at the same name, as a
camera serves each open afresh, so a reopened source does not share its bytes with the
earlier reader still stuck in its read; at teardown the writer closes every pipe and
the stuck readers get their end of file. The daemon runs in-process on a thread so the
stall limit can be short.
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
SERVED = 4  # frames each open of the pipe gives before it hangs


def video_head(path: Path, frames: int) -> bytes:
    """A real 30-frame MJPG .avi, cut just after its ``frames``-th frame chunk."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (96, 96))
    for _ in range(30):
        writer.write(np.full((96, 96, 3), 128, np.uint8))
    writer.release()
    data = path.read_bytes()
    pos = data.index(b"movi") + 4
    for _ in range(frames):
        assert data[pos:pos + 4] == b"00dc", data[pos:pos + 4]
        size = int.from_bytes(data[pos + 4:pos + 8], "little")
        pos += 8 + size + (size & 1)
    return data[:pos]


@pytest.fixture
def stuck_pipe(tmp_path: Path):
    """A named pipe that gives every reader that opens it SERVED frames, then nothing."""
    head = video_head(tmp_path / "video.avi", SERVED)
    pipe = tmp_path / "camera.avi"
    os.mkfifo(pipe)
    held: list[int] = []  # write ends kept open: their readers wait in read
    done = threading.Event()

    def serve() -> None:
        while True:
            fd = os.open(pipe, os.O_WRONLY)  # waits for the daemon to open the pipe
            held.append(fd)
            if done.is_set():
                return
            os.unlink(pipe)  # the next open gets a pipe of its own
            os.mkfifo(pipe)
            os.write(fd, head)  # a few KB: fits the pipe's buffer, never blocks

    writer = threading.Thread(target=serve, daemon=True)
    writer.start()
    yield pipe
    done.set()
    # A reader that comes and goes lets the writer out of its open.
    with contextlib.suppress(OSError):
        os.close(os.open(pipe, os.O_RDONLY | os.O_NONBLOCK))
    writer.join(5)
    for fd in held:  # the readers still stuck in a read get their end of file
        os.close(fd)


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


def test_a_stuck_source_is_logged_reopened_and_starves_the_watchdog(tmp_path, stuck_pipe, model_path,
                                                                    monkeypatch, caplog):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # a ping every 0.5 s while healthy
    caplog.set_level(logging.INFO, logger="facecue")
    daemon, thread = start_daemon(tmp_path, stuck_pipe, model_path)
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
    assert len(stalls) == 2 and daemon.frames_seen >= 2 * SERVED, stalls
    assert re.fullmatch(r"camera error: no frame from .*camera\.avi for 1.5s \(the source is stuck\); "
                        r"retrying in \d+s", stalls[0]), stalls[0]
    # Pings come every 0.5 s while frames flow and while waiting to reopen; each stuck
    # read left a hole of about the stall limit (no ping came between it and the line).
    gaps = np.diff(pings)
    assert (gaps > STALL - 0.6).sum() >= 1 and (gaps < 0.8).sum() >= 1, gaps
    # "camera problem" was spoken: the only sound on a timeline of faceless frames.
    with wave.open(str(tmp_path / "heard.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    assert np.abs(pcm).max() > 1000


def test_the_retry_delay_starts_over_once_frames_flow_again(tmp_path, stuck_pipe, model_path, caplog):
    caplog.set_level(logging.INFO, logger="facecue")
    daemon, thread = start_daemon(tmp_path, stuck_pipe, model_path)
    try:
        stalls = wait_for_stalls(caplog, 3, 60)
    finally:
        daemon.stop()
        thread.join(10)
    # Each reopen served frames before it stuck again: 1 s every time, never 1, 2, 4 ...
    assert len(stalls) >= 3, stalls
    delays = [int(re.search(r"retrying in (\d+)s", line)[1]) for line in stalls[:3]]
    assert delays == [1, 1, 1], stalls


def test_a_stuck_file_source_ends_a_foreground_run_with_one_line(tmp_path, stuck_pipe):
    """Without --retry, `facecue run` on a source that hangs exits 1 after the default stall limit."""
    config = tmp_path / "config.toml"
    config.write_text("")
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "device.cli", "run", "--config", str(config), "--source",
                          str(stuck_pipe), "--audio-out", str(tmp_path / "a.wav")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stderr.splitlines() == [f"facecue: error: no frame from {stuck_pipe} for 5s (the source is stuck)"]
    assert time.monotonic() - start < 60


def test_a_pipe_no_one_writes_to_is_a_stuck_source_not_a_hang(tmp_path):
    """Opening a named pipe waits for a writer; that wait is on the reader's thread, so
    it is a stall like any other, not a daemon hung before its first frame."""
    pipe = tmp_path / "camera.avi"
    os.mkfifo(pipe)
    config = tmp_path / "config.toml"
    config.write_text("")
    run = subprocess.run([sys.executable, "-m", "device.cli", "run", "--config", str(config), "--source",
                          str(pipe), "--audio-out", str(tmp_path / "a.wav")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stderr.splitlines() == [f"facecue: error: no frame from {pipe} for 5s (the source is stuck)"]


def test_a_camera_that_stalls_again_and_again_holds_a_bounded_number_of_threads(tmp_path, stuck_pipe, model_path,
                                                                               monkeypatch, caplog):
    """Each stall leaves a thread inside a read that never returns; after MAX_STUCK_READERS
    of them the camera is not reopened (and the watchdog starves, for systemd to restart
    the service) instead of starting one more thread per stall."""
    from device.frame_reader import MAX_STUCK_READERS

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    caplog.set_level(logging.INFO, logger="facecue")
    daemon, thread = start_daemon(tmp_path, stuck_pipe, model_path)
    def pings() -> int:
        count = 0
        with contextlib.suppress(TimeoutError):
            while True:
                count += b"WATCHDOG=1" in sock.recv(4096)
        return count

    refused: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not refused:
            refused = [r.getMessage() for r in caplog.records if "stuck in its driver" in r.getMessage()]
            pings()  # those of the healthy stretches
        time.sleep(4 * STALL)  # long enough for several more stalls, were it still reopening
        readers = [t for t in threading.enumerate() if t.name == "capture"]
        pings_after = pings()
    finally:
        daemon.stop()
        thread.join(10)
        sock.close()
    assert refused and refused[0].startswith(f"camera error: {MAX_STUCK_READERS} reads of the camera are stuck in "
                                             "its driver; not opening it again until one returns"), refused
    assert len(stall_lines(caplog)) == MAX_STUCK_READERS
    assert len(readers) == MAX_STUCK_READERS, readers
    assert pings_after == 0  # the watchdog starves: under systemd a fresh process takes over
