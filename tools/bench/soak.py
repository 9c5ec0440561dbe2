"""A timed run of the real daemon on a looping source: READY time, memory over time, faults.

The same run serves the bench's daemon figures (a short one) and ``--soak
MINUTES``: RSS is sampled every ``every`` seconds and its least-squares
slope in MB/hour says whether memory is flat; the daemon's own stats lines
give its frame rate and the frames it dropped or rejected, its log the
errors.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tools.bench.daemon import DaemonError, DaemonProcess, parse_log


@dataclass
class SoakResult:
    seconds: float
    every: float
    ready_s: float
    samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds since READY, RSS MB)
    peak_rss_mb: float | None = None
    slope_mb_per_h: float | None = None
    fps: float | None = None
    frames: int = 0
    dropped: int = 0
    bad: int = 0
    errors: int = 0
    warnings: int = 0
    exit_code: int | None = None
    ended_early: bool = False
    source_fps: float = 0.0


# The shortest span of samples a slope is fitted to. Over the first minutes RSS still
# grows as the allocator and LiteRT's arenas settle: a 20 s run's "slope" extrapolates
# that warm-up to hours and reads as a leak (or hides one) when it is neither.
MIN_SLOPE_SECONDS = 300.0


def rss_slope(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of RSS in MB per hour; None unless the samples span
    :data:`MIN_SLOPE_SECONDS`."""
    if len(samples) < 2:
        return None
    t = np.array([s[0] for s in samples]) / 3600.0
    mb = np.array([s[1] for s in samples])
    if np.ptp(t) * 3600.0 < MIN_SLOPE_SECONDS:
        return None
    return float(np.polyfit(t, mb, 1)[0])


def soak(folder: Path, source: Path, model: Path, seconds: float, every: float,
         source_fps: float, say: Callable[[str], None] = print) -> SoakResult:
    """Run the daemon for ``seconds`` after READY, sampling RSS every ``every`` seconds.

    ``say`` gets one progress line per sample, so a 30-minute soak shows
    that it is alive. A daemon that dies early ends the run with
    ``ended_early`` set and its exit code kept.
    """
    daemon = DaemonProcess(folder, source, model, stats_every=every)
    daemon.start()
    try:
        result = SoakResult(seconds, every, daemon.wait_ready(), source_fps=source_fps)
        ready_at = time.monotonic()
        next_sample, end = ready_at + every, ready_at + seconds
        while True:
            wake = min(next_sample, end)
            while daemon.alive() and time.monotonic() < wake:
                time.sleep(min(0.5, max(wake - time.monotonic(), 0.0)))
            rss = daemon.rss_mb() if daemon.alive() else None
            if rss is None:
                result.ended_early = True
                break
            now = time.monotonic() - ready_at
            result.samples.append((round(now, 2), rss))
            say(f"soak {now:7.1f}s rss {rss:.1f} MB")
            if now >= seconds:
                break
            next_sample += every
        # The kernel updates VmHWM lazily, so a sampled VmRSS can briefly be above it.
        readings = [daemon.peak_rss_mb(), *(mb for _, mb in result.samples)]
        result.peak_rss_mb = max((mb for mb in readings if mb is not None), default=None)
    finally:
        result_code = daemon.stop()
    if not result.samples:
        raise DaemonError(f"daemon stopped before the first sample: {daemon.last_line()}")
    result.exit_code = result_code
    result.slope_mb_per_h = rss_slope(result.samples)
    stats = parse_log(daemon.log())
    result.fps, result.frames, result.dropped, result.bad = stats.fps, stats.frames, stats.dropped, stats.bad
    result.errors, result.warnings = stats.errors, stats.warnings
    return result
