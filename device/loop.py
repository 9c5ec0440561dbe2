"""The daemon: capture -> face -> expression -> voice, forever.

Faults never end it: a camera that fails, or that stops delivering frames
without failing (a read that hangs), is reopened with backoff, garbage
frames are counted and skipped, a model that fails to load leaves the
previous one serving, a missing sound card leaves the log speaking. It tells
systemd READY once the model is loaded, pings the watchdog from the loop
(but not while the frame source is stuck), and stops within 2 s of SIGTERM.
"""
from __future__ import annotations

import logging
import random
import signal
import threading
import time
from dataclasses import dataclass

from device.announce import Announcer
from device.capture import CaptureError, FrameSource, open_source
from device.classify import ModelError
from device.config import Config
from device.decide import Decider
from device.frame_reader import END, FrameReader
from device.model_slot import ModelSlot
from device.pipeline import BadFrame, Pipeline, StageStats
from device.sdnotify import Notifier
from device.tracker import tracker_from_config

log = logging.getLogger("facecue")


@dataclass(frozen=True)
class RunOptions:
    """How this run differs from the service: foreground choices from the CLI."""

    retry_forever: bool = True  # the service waits for a camera; `facecue run` on a file does not
    max_backoff: float = 30.0
    # One read blocked this long means a stuck source: far above a camera's warm-up,
    # far below the unit's WatchdogSec, so the loop reopens it before systemd steps in.
    stall_after: float = 5.0


class Backoff:
    """Exponential delays with jitter: 1, 2, 4 ... max seconds."""

    def __init__(self, maximum: float) -> None:
        self.maximum = maximum
        self.attempt = 0

    def next(self) -> float:
        delay = min(2.0 ** self.attempt, self.maximum)
        self.attempt += 1
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self.attempt = 0


class Daemon:
    def __init__(self, cfg: Config, announcer: Announcer, options: RunOptions = RunOptions(),
                 notifier: Notifier | None = None) -> None:
        self.cfg = cfg
        self.options = options
        self.announcer = announcer
        self.notifier = notifier or Notifier()
        self.stop_event = threading.Event()
        self.models = ModelSlot(cfg.model)
        self.tracker = tracker_from_config(cfg.detect)
        self.decider = Decider(cfg.decide)
        self.pipeline: Pipeline | None = None
        self.camera_ok = False
        self.bad_frames = 0
        self.frames_seen = 0
        self._next_watchdog = 0.0
        interval = self.notifier.watchdog_interval()
        self._watchdog_every = interval / 2 if interval else None

    # -- signals and housekeeping ------------------------------------------
    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        signal.signal(signal.SIGHUP, lambda *_: self.models.request_reload())

    def stop(self) -> None:
        self.stop_event.set()

    def _housekeeping(self, source_blocked: float = 0.0) -> None:
        """Between frames: watchdog ping, live model swap.

        ``source_blocked`` is how long the frame source has been inside one read:
        beyond a ping interval the watchdog goes unfed, so a source that hangs
        cannot make a mute daemon look healthy.
        """
        now = time.monotonic()
        fed = self._watchdog_every and source_blocked < self._watchdog_every
        if fed and now >= self._next_watchdog:
            self.notifier.watchdog()
            self._next_watchdog = now + self._watchdog_every
        new = self.models.poll()
        if new is not None and self.pipeline is not None:
            self.pipeline.classifier = new
            self.announcer.event("model_updated")

    def _wait(self, seconds: float) -> None:
        """Sleep, but keep the watchdog fed and wake at once on SIGTERM."""
        end = time.monotonic() + seconds
        while not self.stop_event.is_set() and time.monotonic() < end:
            self._housekeeping()
            self.stop_event.wait(min(0.5, max(end - time.monotonic(), 0)))

    # -- start-up --------------------------------------------------------------
    def _load_model(self) -> bool:
        backoff = Backoff(self.options.max_backoff)
        while not self.stop_event.is_set():
            try:
                classifier = self.models.load()
            except ModelError as exc:
                if not self.options.retry_forever:
                    raise
                self.announcer.event("error")
                delay = backoff.next()
                log.error("no usable model (%s); retrying in %.0fs", exc, delay)
                self.notifier.status(f"no usable model; retrying in {delay:.0f}s")
                self._wait(delay)
                continue
            self.models.classifier = classifier
            self.announcer.recovered("error")
            self.pipeline = Pipeline(self.tracker, classifier, self.decider)
            log.info("model loaded version %s from %s (%s, %s threads)", classifier.info.version,
                     classifier.info.path, classifier.input_dtype, self.cfg.model.threads)
            return True
        return False

    def _open_camera(self, backoff: Backoff) -> FrameSource | None:
        c = self.cfg.camera
        while not self.stop_event.is_set():
            try:
                source = open_source(c.source, c.width, c.height, c.fps)
            except CaptureError as exc:
                if not self.options.retry_forever:
                    raise
                if self.camera_ok or backoff.attempt == 0:
                    self.announcer.event("camera_error")
                self.camera_ok = False
                delay = backoff.next()
                log.error("camera error: %s; retrying in %.0fs", exc, delay)
                self.notifier.status(f"camera error; retrying in {delay:.0f}s")
                self._wait(delay)
                continue
            log.info("camera %s open", source.name)
            self.notifier.status(f"serving from {source.name}")
            return source
        return None

    def _frames_flow(self, backoff: Backoff) -> None:
        """The first frame from an opened source: only now is the camera healthy, so
        the next fault starts again from a short delay and is announced again."""
        backoff.reset()
        self.camera_ok = True
        self.announcer.recovered("camera_error")

    def _camera_fault(self, exc: CaptureError, backoff: Backoff) -> None:
        """A source that failed or stalled mid-stream: say so once, then wait to reopen it.

        Without ``retry_forever`` the fault ends the run as one error line.
        """
        self.announcer.event("camera_error")
        self.camera_ok = False
        if not self.options.retry_forever:
            raise exc
        delay = backoff.next()
        log.error("camera error: %s; reopening in %.0fs", exc, delay)
        self.notifier.status(f"camera error; reopening in {delay:.0f}s")
        self._wait(delay)

    # -- the loop ------------------------------------------------------------------
    def run(self) -> int:
        """Serve until SIGTERM (or the end of a file source). Returns an exit code."""
        try:
            if not self._load_model():
                return 0
            self.notifier.ready()
            backoff = Backoff(self.options.max_backoff)
            while not self.stop_event.is_set():
                source = self._open_camera(backoff)
                if source is None:
                    break
                outcome = self._serve(source, backoff)
                if outcome == "end":
                    break
                if isinstance(outcome, CaptureError):
                    self._camera_fault(outcome, backoff)
            return 0
        finally:
            self.notifier.stopping()
            self.announcer.close()

    def _log_stats(self, stats: StageStats, reader: FrameReader) -> None:
        log.info("%s dropped %d bad %d", stats.line(), reader.dropped, self.bad_frames)

    def _serve(self, source: FrameSource, backoff: Backoff) -> str | CaptureError:
        """Frames from one opened source until it ends ("end"), we stop ("stopped"), or
        it fails or stalls (the CaptureError saying how)."""
        reader = FrameReader(source, self.cfg.camera.realtime)
        self.tracker.reset()  # a reopened source starts its own clock
        stats = StageStats()
        next_stats = time.monotonic() + self.cfg.log.stats_every
        try:
            while not self.stop_event.is_set():
                self._housekeeping(reader.blocked_for())
                item = reader.get(timeout=0.5)
                if time.monotonic() >= next_stats:
                    self._log_stats(stats, reader)
                    stats = StageStats()
                    next_stats = time.monotonic() + self.cfg.log.stats_every
                if item is None:
                    if reader.blocked_for() >= self.options.stall_after:
                        return CaptureError(f"no frame from {source.name} for {self.options.stall_after:g}s "
                                            "(the source is stuck)")
                    continue
                if item is END:
                    self._log_stats(stats, reader)
                    log.info("end of %s after %d frames", source.name, self.frames_seen)
                    return "end"
                if isinstance(item, CaptureError):
                    return item
                if not self.camera_ok:
                    self._frames_flow(backoff)
                frame, capture_ms = item
                self.frames_seen += 1
                try:
                    result = self.pipeline.step(frame, capture_ms)
                except BadFrame as exc:
                    self.bad_frames += 1
                    if self.bad_frames == 1 or self.bad_frames % 100 == 0:
                        log.warning("skipping bad frame (%d so far): %s", self.bad_frames, exc)
                    continue
                for announcement in result.announcements:
                    self.announcer.announce(announcement)
                stats.add(result)
            return "stopped"
        finally:
            reader.close()

    # -- buttons ---------------------------------------------------------------------
    def status_text(self) -> str:
        """What a long hold says: model version and camera state."""
        c = self.models.classifier
        model = f"model version {c.info.version}" if c else "no model"
        return f"{model}, camera {'ok' if self.camera_ok else 'not working'}"
