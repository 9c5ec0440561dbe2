"""The daemon: capture -> face -> expression -> voice, forever.

Faults never end it: a camera that fails, or that stops delivering frames
without failing (a read that hangs), is reopened with backoff, garbage
frames are counted and skipped, a model that fails to load leaves the
previous one serving, a model that fails on a real face is dropped for the
previous or shipped one, a missing sound card leaves the log speaking. It
tells systemd READY once a model is loaded, pings the watchdog from the loop
(but not while the frame source is stuck), and stops within 2 s of SIGTERM.

The loop is a state machine; :class:`State` names the states, and each
state's handler in :class:`Daemon` returns the next one::

    LOADING --a model serves: READY--> OPENING --opened--> WAITING --a frame--> SERVING
    LOADING --no usable model--> LOADING (after a backoff wait)
    OPENING --open fails--> CAMERA_FAULT --backoff wait--> OPENING
    WAITING, SERVING --read fails or stalls--> CAMERA_FAULT
    SERVING --a model fails on a face, another loads--> SERVING
    SERVING --a model fails on a face, none other loads--> LOADING
    any --SIGTERM, or the end of a file source--> STOPPED

Without ``retry_forever`` (``facecue run`` on a file) a camera or model
fault ends the run instead, as one error line. The loop is the only thread
that touches the decider and the pipeline: button presses, a model loaded
in the background, reload and stop all reach it as typed events in one
:class:`~device.inbox.Inbox`, taken between frames and during waits. The
serving model belongs to the :class:`~device.model_slot.ModelSlot`; the loop
reads it for each frame and never keeps a copy.
"""
from __future__ import annotations

import dataclasses
import logging
import random
import signal
import time
from dataclasses import dataclass
from enum import Enum
from typing import Callable

from core.words import count
from device.announce import Announcer, Notice
from device.capture import CaptureError, FrameSource, open_source
from device.classify import ModelError
from device.config import CameraConfig, Config
from device.decide import Decider
from device.detect import DetectorError
from device.frame_reader import END, MAX_STUCK_READERS, FrameReader, stuck_readers
from device.inbox import Event, Inbox, ModelReady, Press, Request
from device.model_slot import ModelSlot
from device.people import FacingWatch, person_cue
from device.pipeline import BadFrame, ModelFailed, Pipeline, StageStats
from device.sdnotify import Notifier
from device.tracker import FaceTracker, tracker_from_config

log = logging.getLogger("facecue")

CameraOpener = Callable[[CameraConfig], FrameSource]
Clock = Callable[[], float]  # monotonic seconds

# How long one wait for a frame, or one slice of a backoff wait, may last: how often
# the loop looks at the watchdog and the model store when nothing happens. An
# event in the inbox ends a backoff slice at once.
WAIT_SLICE = 0.1


@dataclass(frozen=True)
class RunOptions:
    """How this run differs from the service: foreground choices from the CLI."""

    retry_forever: bool = True  # the service waits for a camera; `facecue run` on a file does not
    max_backoff: float = 30.0
    # One read blocked this long means a stuck source: far above a camera's warm-up,
    # far below the unit's WatchdogSec, so the loop reopens it before systemd steps in.
    stall_after: float = 5.0


class State(Enum):
    """Where the loop is (see the module docstring for the transitions)."""

    LOADING = "loading a model"
    OPENING = "opening the camera"
    WAITING = "waiting for the first frame"
    SERVING = "serving frames"
    CAMERA_FAULT = "waiting to reopen the camera"
    STOPPED = "stopped"


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


def open_camera(c: CameraConfig) -> FrameSource:
    """The configured ``[camera]`` source: what the daemon opens unless told otherwise."""
    return open_source(c.source, c.width, c.height, c.fps)


class Daemon:
    """The loop's state and its handlers.

    ``open_camera``, ``models`` and ``clock`` default to the real ones; tests
    pass a scripted camera, a slot over their own store, or a clock they
    drive, to walk the fault paths in-process. The clock times the loop's own
    waits and schedules (backoff, watchdog, stats); a stuck read is measured
    by the frame reader on the real clock.
    """

    def __init__(self, cfg: Config, announcer: Announcer, options: RunOptions = RunOptions(),
                 notifier: Notifier | None = None, *, open_camera: CameraOpener = open_camera,
                 models: ModelSlot | None = None, clock: Clock = time.monotonic) -> None:
        self.cfg = cfg
        self.options = options
        self.announcer = announcer
        self.notifier = notifier or Notifier()
        self.open_camera = open_camera
        self.models = models or ModelSlot(cfg.model)
        self.clock = clock
        self.inbox = Inbox()
        self.stopping = False  # a STOP came: leave at the next state change
        self.state = State.LOADING
        self.tracker = self._make_tracker()
        self.decider = Decider(cfg.decide)
        facing = FacingWatch(cfg.people) if cfg.people.facing_earcon else None
        self.pipeline = Pipeline(self.tracker, self.decider, facing)
        self._last_image = None  # the latest good frame, for the person cue; None while no camera serves
        self.bad_frames = 0
        self.frames_seen = 0
        self._source: FrameSource | None = None  # opened in OPENING, served in WAITING/SERVING
        self._fault: CaptureError | None = None  # why the loop is in CAMERA_FAULT
        self._model_backoff = Backoff(options.max_backoff)
        self._camera_backoff = Backoff(options.max_backoff)
        self._next_watchdog = 0.0
        interval = self.notifier.watchdog_interval()
        self._watchdog_every = interval / 2 if interval else None

    def _make_tracker(self) -> FaceTracker:
        """The configured detector, or Haar's cascade if YuNet's file is broken: the
        device keeps finding faces (less well) and says "error" once, instead of
        stopping with nothing served."""
        try:
            return tracker_from_config(self.cfg.detect)
        except DetectorError as exc:
            if self.cfg.detect.method == "haar":
                raise
            log.error("detector error: %s; finding faces with the Haar cascade instead", exc)
            self.announcer.event(Notice.ERROR, 0.0)
            return tracker_from_config(dataclasses.replace(self.cfg.detect, method="haar"))

    # -- signals and the state machine -----------------------------------------
    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        signal.signal(signal.SIGHUP, lambda *_: self.inbox.post(Request.RELOAD))

    def stop(self) -> None:
        """From any thread or a signal handler: leave the loop within a wait slice."""
        self.inbox.post(Request.STOP)

    def run(self) -> int:
        """Serve until SIGTERM (or the end of a file source). Returns an exit code."""
        handlers = {State.LOADING: self._load, State.OPENING: self._open, State.WAITING: self._serve,
                    State.SERVING: self._serve, State.CAMERA_FAULT: self._reopen_later}
        try:
            while self.state is not State.STOPPED:
                after = handlers[self.state]()
                self._enter(State.STOPPED if self.stopping else after)
            return 0
        finally:
            self.notifier.stopping()
            self.announcer.close(self._frame_time())

    def _enter(self, state: State) -> None:
        if state is not self.state:
            log.debug("state %s -> %s", self.state.name, state.name)
            self.state = state

    def _frame_time(self) -> float:
        """Where a sound that no frame caused goes on the timeline: the latest frame's time."""
        return self.decider.last_t or 0.0

    # -- between frames and while waiting --------------------------------------
    def _housekeeping(self, source_blocked: float = 0.0) -> None:
        """Watchdog ping, a look at the model store, the events in the inbox.

        ``source_blocked`` is how long the frame source has been inside one read:
        beyond a ping interval the watchdog goes unfed, so a source that hangs
        cannot make a mute daemon look healthy.
        """
        now = self.clock()
        fed = self._watchdog_every and source_blocked < self._watchdog_every and not self._too_many_stuck()
        if fed and now >= self._next_watchdog:
            self.notifier.watchdog()
            self._next_watchdog = now + self._watchdog_every
        if self.state is not State.LOADING:  # LOADING loads the store's newest itself
            self.models.check(self.inbox.post)
        self._take(self.inbox.wait(0))

    def _wait(self, seconds: float) -> None:
        """Sleep ``seconds`` of the clock, but keep the watchdog fed, take events at
        once, and wake at once on a STOP."""
        end = self.clock() + seconds
        while not self.stopping:
            self._housekeeping()
            left = end - self.clock()
            if left <= 0 or self.stopping:
                return
            self._take(self.inbox.wait(min(WAIT_SLICE, left)))

    def _take(self, events: list[Event]) -> None:
        """Act on the inbox's events in the order they came."""
        for event in events:
            if isinstance(event, ModelReady):
                if self.models.accept(event):
                    self.announcer.recovered(Notice.ERROR)
                    self.announcer.event(Notice.MODEL_UPDATED, self._frame_time())
            elif event is Request.STOP:
                self.stopping = True
            elif event is Request.RELOAD:
                self.models.check_now()
            else:
                self._answer(event)

    def _answer(self, press: Press) -> None:
        if press is Press.REPEAT:
            self.announcer.repeat(self.decider.current(), self._frame_time())
        elif press is Press.MUTE:
            self.announcer.toggle_mute(self._frame_time())
        elif press is Press.PEOPLE:
            self._who_is_there()
        else:
            serving = self.models.serving
            self.announcer.status(serving and serving.info.version, self.state is State.SERVING,
                                  self._frame_time())

    def _who_is_there(self) -> None:
        """The person cue from one full search of the latest frame: every face in view,
        not only the followed one (nobody without a frame)."""
        image = self._last_image
        boxes = [] if image is None else self.tracker.all_faces(image)
        width = 1 if image is None else image.shape[1]
        self.announcer.people(person_cue(boxes, width, self.cfg.people), self._frame_time())

    # -- LOADING -----------------------------------------------------------------
    def _load(self) -> State:
        try:
            classifier = self.models.load()
        except ModelError as exc:
            if not self.options.retry_forever:
                raise
            self.announcer.event(Notice.ERROR, self._frame_time())
            delay = self._model_backoff.next()
            log.error("no usable model (%s); retrying in %.0fs", exc, delay)
            self.notifier.status(f"no usable model; retrying in {delay:.0f}s")
            self._wait(delay)
            return State.LOADING
        self._model_backoff.reset()
        self.announcer.recovered(Notice.ERROR)
        log.info("model loaded version %s from %s (%s, %s)", classifier.info.version,
                 classifier.info.path, classifier.input_dtype, count(self.cfg.model.threads, "thread"))
        self.notifier.ready()
        return State.OPENING

    def _model_failed(self, failure: ModelFailed) -> bool:
        """The serving model broke on a face: say so once, drop it and serve the next
        candidate at once. False: none is left (LOADING then says why and retries)."""
        self.announcer.event(Notice.ERROR, self._frame_time())
        self.models.drop(failure.classifier)
        try:
            classifier = self.models.load()
        except ModelError:
            log.error("model error: %s", failure)
            return False
        log.error("model error: %s; serving %s from %s instead", failure, classifier.info.version,
                  classifier.info.path)
        self.announcer.recovered(Notice.ERROR)
        return True

    # -- OPENING and CAMERA_FAULT -----------------------------------------------
    @staticmethod
    def _too_many_stuck() -> bool:
        """As many reads as :data:`MAX_STUCK_READERS` never returned: the camera is not
        opened again until one does (a thread each, otherwise), and the watchdog goes
        unfed, so that systemd restarts the service afresh."""
        return stuck_readers() >= MAX_STUCK_READERS

    def _open(self) -> State:
        if self._too_many_stuck():
            return self._camera_fault(CaptureError(
                f"{stuck_readers()} reads of the camera are stuck in its driver; "
                "not opening it again until one returns"))
        try:
            self._source = self.open_camera(self.cfg.camera)
        except CaptureError as exc:
            return self._camera_fault(exc)
        log.info("camera %s open", self._source.name)
        self.notifier.status(f"serving from {self._source.name}")
        return State.WAITING

    def _camera_fault(self, exc: CaptureError) -> State:
        """A source that failed to open, failed mid-stream or stalled: say so once per
        outage. Without ``retry_forever`` the fault ends the run as one error line."""
        self.announcer.event(Notice.CAMERA_ERROR, self._frame_time())
        self._last_image = None
        if not self.options.retry_forever:
            raise exc
        self._fault = exc
        return State.CAMERA_FAULT

    def _reopen_later(self) -> State:
        delay = self._camera_backoff.next()
        log.error("camera error: %s; retrying in %.0fs", self._fault, delay)
        self.notifier.status(f"camera error; retrying in {delay:.0f}s")
        self._wait(delay)
        return State.OPENING

    # -- WAITING and SERVING ------------------------------------------------------
    def _serve(self) -> State:
        """Frames from the opened source until it ends or we stop (STOPPED), it fails
        or stalls (CAMERA_FAULT), or no model is left (LOADING)."""
        source = self._source
        reader = FrameReader(source, self.cfg.camera.realtime)
        self.tracker.reset()  # a reopened source starts its own clock
        stats = StageStats()
        next_stats = self.clock() + self.cfg.log.stats_every
        try:
            while not self.stopping:
                self._housekeeping(reader.blocked_for())
                item = reader.get(timeout=WAIT_SLICE)
                if self.clock() >= next_stats:
                    self._log_stats(stats, reader)
                    stats = StageStats()
                    next_stats = self.clock() + self.cfg.log.stats_every
                if item is None:
                    if reader.blocked_for() >= self.options.stall_after:
                        return self._camera_fault(CaptureError(
                            f"no frame from {source.name} for {self.options.stall_after:g}s (the source is stuck)"))
                    continue
                if item is END:
                    self._log_stats(stats, reader)
                    log.info("end of %s after %s", source.name, count(self.frames_seen, "frame"))
                    return State.STOPPED
                if isinstance(item, CaptureError):
                    return self._camera_fault(item)
                if self.state is State.WAITING:
                    self._frames_flow()
                frame, capture_ms = item
                self.frames_seen += 1
                try:
                    result = self.pipeline.step(frame, self.models.serving, capture_ms)
                except BadFrame as exc:
                    self.bad_frames += 1
                    if self.bad_frames == 1 or self.bad_frames % 100 == 0:
                        log.warning("skipping bad frame (%d so far): %s", self.bad_frames, exc)
                    continue
                except ModelFailed as failure:
                    if not self._model_failed(failure):
                        return State.LOADING
                    continue
                self._last_image = frame.image
                for announcement in result.announcements:
                    self.announcer.announce(announcement)
                stats.add(result)
            return State.STOPPED
        finally:
            reader.close()

    def _frames_flow(self) -> None:
        """The first frame from an opened source: only now is the camera healthy, so
        the next fault starts again from a short delay and is announced again."""
        self._camera_backoff.reset()
        self.announcer.recovered(Notice.CAMERA_ERROR)
        self._enter(State.SERVING)

    def _log_stats(self, stats: StageStats, reader: FrameReader) -> None:
        log.info("%s dropped %d bad %d", stats.line(), reader.dropped, self.bad_frames)
