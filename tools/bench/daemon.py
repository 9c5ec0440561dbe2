"""The real daemon as a child process, started the way systemd starts it.

``python -m device.cli run`` is launched with ``NOTIFY_SOCKET`` pointing at
a datagram socket the bench binds, so "start to READY" is measured exactly
as systemd sees it (interpreter start, imports, model load). Its memory is
read from ``/proc/PID/status`` while it runs (``VmRSS`` now, ``VmHWM`` the
peak). The source loops: an ffconcat playlist that names the scene video
over and over, which OpenCV's FFmpeg backend reads as one long video, so
the daemon's own ``VideoFileSource`` serves it without any change to the
device code.
"""
from __future__ import annotations

import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATS = re.compile(r"stats fps ([0-9.]+) frames (\d+) faces (\d+) .*?dropped (\d+) bad (\d+)")
PROBLEM = re.compile(r"^(?:\S+ \S+ )?(ERROR|CRITICAL|WARNING) ", re.M)


class DaemonError(RuntimeError):
    """The daemon did not start or died; the message carries its last log line."""


def write_loop_playlist(video: Path, folder: Path, seconds: float, video_seconds: float) -> Path:
    """An ffconcat file that plays ``video`` long enough to cover ``seconds`` of real time.

    The concat demuxer only accepts plain relative names, so the video is
    linked into ``folder`` under a fixed one.
    """
    link = folder / f"looped{video.suffix.lower()}"
    if link.is_symlink():
        link.unlink()
    link.symlink_to(video.resolve())
    repeats = max(math.ceil(seconds / max(video_seconds, 1e-3)) + 1, 2)
    playlist = folder / "loop.ffconcat"
    playlist.write_text("ffconcat version 1.0\n" + f"file {link.name}\n" * repeats)
    return playlist


def proc_status_kb(pid: int, key: str) -> int | None:
    """A ``kB`` field of ``/proc/PID/status`` (VmRSS, VmHWM), None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else None


@dataclass
class DaemonStats:
    """What the daemon's own log says about a run."""

    fps: float | None
    frames: int
    dropped: int
    bad: int
    errors: int
    warnings: int


def parse_log(log: str) -> DaemonStats:
    """The last ``stats`` line (fps, cumulative dropped/bad), frames summed over all lines, problems counted."""
    lines = STATS.findall(log)
    levels = PROBLEM.findall(log)
    fps = float(lines[-1][0]) if lines else None
    return DaemonStats(fps, sum(int(m[1]) for m in lines), int(lines[-1][3]) if lines else 0,
                       int(lines[-1][4]) if lines else 0,
                       sum(lv in ("ERROR", "CRITICAL") for lv in levels), levels.count("WARNING"))


class DaemonProcess:
    """``facecue run`` on ``source`` in ``folder``, realtime-paced like a camera."""

    def __init__(self, folder: Path, source: Path, model: Path, stats_every: float) -> None:
        self.folder = folder
        self.log_path = folder / "daemon.log"
        config = folder / "daemon.toml"
        config.write_text(f"[log]\nstats_every = {float(stats_every)}\n")
        self.command = [sys.executable, "-m", "device.cli", "run", "--config", str(config),
                        "--source", str(source), "--realtime", "--model", str(model),
                        "--audio-out", str(folder / "heard.wav"), "--log-level", "info"]
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.started = 0.0

    def start(self) -> None:
        sock_path = self.folder / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(sock_path))
        env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "WATCHDOG_USEC")}
        env.update(NOTIFY_SOCKET=str(sock_path), PYTHONPATH=os.pathsep.join(
            p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p))
        with open(self.log_path, "wb") as log:
            self.started = time.monotonic()
            self.proc = subprocess.Popen(self.command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from launch to ``READY=1``; raises DaemonError if it exits or times out first."""
        deadline = self.started + timeout
        self.sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                message = self.sock.recv(4096).decode(errors="replace")
            except socket.timeout:
                if self.proc.poll() is not None:
                    raise DaemonError(
                        f"daemon exited with {self.proc.returncode} before READY: {self.last_line()}") from None
                continue
            if "READY=1" in message.split("\n"):
                return time.monotonic() - self.started
        raise DaemonError(f"daemon sent no READY within {timeout:.0f}s: {self.last_line()}")

    def rss_mb(self) -> float | None:
        kb = proc_status_kb(self.proc.pid, "VmRSS")
        return None if kb is None else kb / 1024

    def peak_rss_mb(self) -> float | None:
        kb = proc_status_kb(self.proc.pid, "VmHWM")
        return None if kb is None else kb / 1024

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, as systemd stops it; SIGKILL if it does not go in ``timeout``."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            if self.sock is not None:
                self.sock.close()
        return self.proc.returncode if self.proc is not None else 0

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def last_line(self) -> str:
        lines = self.log().strip().splitlines()
        return lines[-1] if lines else "(no output)"
