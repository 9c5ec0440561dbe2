"""The daemon's loop in-process, walked through its fault paths with a scripted camera.

The camera opener is the only stand-in: each open takes the next step of a
script (the open fails, or frames flow and then the read fails, hangs or
ends). Everything else is real: the shipped model and a sync store, the
voice pack writing a WAV timeline, gpiozero's MockFactory buttons. A fast
clock lets the backoff waits (1, 2, 4 s) pass in a fraction of a second
while the log still names them; a clock that stands still keeps the loop
waiting for as long as a test needs.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from core.frames import Frame
from device import model_store
from device.announce import build_announcer
from device.capture import CaptureError
from device.config import load
from device.loop import Daemon, RunOptions, State
from device.model_slot import ModelSlot
from device.presses import press_buttons
from tests.test_model_slot import METADATA_ONLY, install, nan_weights_model

FPS = 15.0
GREY = np.full((96, 96, 3), 128, np.uint8)
STALL = 0.5


@dataclass(frozen=True)
class Feed:
    """An open that works: ``frames`` frames of ``image`` (None: grey), then the read
    fails ("fail"), hangs ("stall") or the source ends ("end")."""

    frames: int
    then: str
    image: np.ndarray | None = None


class ScriptedSource:
    """One opened scripted camera: a file-like source, so the reader keeps every frame."""

    live = False

    def __init__(self, camera: ScriptedCamera, feed: Feed) -> None:
        self.name = "scripted camera"
        self.camera, self.feed = camera, feed

    def frames(self) -> Iterator[Frame]:
        for _ in range(self.feed.frames):
            yield Frame(GREY if self.feed.image is None else self.feed.image, self.camera.t, self.camera.index)
            self.camera.t += 1 / FPS
            self.camera.index += 1
        if self.feed.then == "fail":
            raise CaptureError("camera unplugged")
        if self.feed.then == "stall":
            self.camera.unstick.wait()

    def close(self) -> None:
        pass


class ScriptedCamera:
    """The daemon's camera opener: each call takes the next step; the last step repeats.

    Frame times run on across opens, as a live camera's monotonic stamps do.
    """

    def __init__(self, *steps: CaptureError | Feed) -> None:
        self.steps = list(steps)
        self.opens: list[float] = []
        self.t = 0.0
        self.index = 0
        self.unstick = threading.Event()  # lets a hung read return when the test ends

    def __call__(self, _camera_config: object) -> ScriptedSource:
        self.opens.append(time.monotonic())
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, CaptureError):
            raise step
        return ScriptedSource(self, step)


class FastClock:
    """Monotonic seconds running ``speed`` times faster than the wall clock."""

    def __init__(self, speed: float = 50.0) -> None:
        self.start, self.speed = time.monotonic(), speed

    def __call__(self) -> float:
        return self.start + (time.monotonic() - self.start) * self.speed


def still_clock() -> float:
    """A clock that never moves: a backoff wait lasts until the daemon is stopped."""
    return 0.0


class Running:
    """A Daemon's run() on its own thread, with what it returned or raised."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.result: int | BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="daemon-loop", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.daemon.run()
        except BaseException as exc:  # handed to the test, which asserts on it
            self.result = exc

    def stop(self, timeout: float = 10.0) -> float:
        """Stop the daemon as SIGTERM would; seconds until run() returned."""
        start = time.monotonic()
        self.daemon.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the daemon did not stop"
        return time.monotonic() - start


def make_daemon(tmp_path: Path, camera: ScriptedCamera, monkeypatch, *, config: str = "",
                retry: bool = True, clock=None, store: Path | None = None, model: Path | None = None,
                smoke_check=model_store.verify_model_isolated) -> Daemon:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    model_line = f'path = "{model}"\n' if model else ""
    path = tmp_path / "config.toml"
    path.write_text(f'[model]\nstore = "{store or tmp_path / "store"}"\ncheck_every = 0.5\n{model_line}'
                    f'[log]\nstats_every = 3600\n{config}')
    cfg = load(path)
    return Daemon(cfg, build_announcer(cfg, audio_out=tmp_path / "heard.wav"),
                  RunOptions(retry_forever=retry, stall_after=STALL), open_camera=camera,
                  clock=clock or FastClock(), models=ModelSlot(cfg.model, smoke_check))


def messages(caplog, prefix: str = "") -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(prefix)]


def wait_for(caplog, prefix: str, count: int = 1, timeout: float = 60.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while len(messages(caplog, prefix)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return messages(caplog, prefix)


def states(caplog) -> list[str]:
    moves = [m.split()[1:4:2] for m in messages(caplog, "state ")]
    return [moves[0][0], *(to for _, to in moves)] if moves else []


@pytest.fixture
def log(caplog):
    caplog.set_level(logging.DEBUG, logger="facecue")
    return caplog


def test_camera_fails_recovers_fails_again_and_each_outage_is_said_once(tmp_path, monkeypatch, log, model_path):
    camera = ScriptedCamera(CaptureError("no camera yet"), CaptureError("still none"),
                            Feed(5, "fail"), Feed(5, "stall"), Feed(3, "end"))
    daemon = make_daemon(tmp_path, camera, monkeypatch, model=model_path)
    running = Running(daemon)
    try:
        running.thread.join(60)
    finally:
        camera.unstick.set()
        running.stop()
    assert running.result == 0 and daemon.state is State.STOPPED
    assert states(log) == ["LOADING", "OPENING", "CAMERA_FAULT", "OPENING", "CAMERA_FAULT", "OPENING",
                           "WAITING", "SERVING", "CAMERA_FAULT", "OPENING", "WAITING", "SERVING",
                           "CAMERA_FAULT", "OPENING", "WAITING", "SERVING", "STOPPED"]
    faults = messages(log, "camera error")
    assert [re.sub(r"retrying in \d+s", "", f) for f in faults] == [
        "camera error: no camera yet; ", "camera error: still none; ", "camera error: camera unplugged; ",
        f"camera error: no frame from scripted camera for {STALL:g}s (the source is stuck); "]
    # 1 s, then 2 s while no frame came; each outage after frames flowed starts again at 1 s
    assert [int(re.search(r"retrying in (\d+)s", f)[1]) for f in faults] == [1, 2, 1, 1]
    # "camera problem" once per outage: the first (two failed opens) and each of the later two
    assert len(messages(log, "event camera_error")) == 3
    assert daemon.frames_seen == 13 and len(camera.opens) == 5


def test_a_stuck_read_in_a_foreground_run_ends_it_with_the_reason(tmp_path, monkeypatch, log, model_path):
    camera = ScriptedCamera(Feed(3, "stall"))
    daemon = make_daemon(tmp_path, camera, monkeypatch, retry=False, model=model_path)
    running = Running(daemon)
    try:
        running.thread.join(60)
    finally:
        camera.unstick.set()
    assert isinstance(running.result, CaptureError)
    assert str(running.result) == f"no frame from scripted camera for {STALL:g}s (the source is stuck)"
    assert states(log)[-2:] == ["WAITING", "SERVING"] and daemon.frames_seen == 3


def test_presses_during_a_camera_fault_are_answered_at_once_on_the_loop_thread(tmp_path, monkeypatch, log,
                                                                              model_path):
    factory = MockFactory()
    camera = ScriptedCamera(CaptureError("unplugged"))
    daemon = make_daemon(tmp_path, camera, monkeypatch, clock=still_clock, model=model_path,
                         config='[buttons]\nrepeat_pin = "GPIO17"\nlong_press = 0.2\nstatus_hold = 0.5\n')
    pin = factory.pin(17)
    try:
        with press_buttons(daemon.cfg.buttons, daemon.inbox, pin_factory=factory) as buttons:
            assert buttons.layout == "one"
            running = Running(daemon)
            wait_for(log, "camera error")
            pressed = []
            for hold, answer in ((0.03, "button repeat"), (0.35, "button mute"), (0.7, "button status")):
                pressed.append(time.time())  # the clock of a log record's "created"
                pin.drive_low()
                time.sleep(hold)
                pin.drive_high()
                assert len(wait_for(log, answer, timeout=5.0)) == 1, messages(log)
            stop_took = running.stop()
    finally:
        factory.reset()
    answers = [r for r in log.records if r.getMessage().startswith("button ")]
    assert [r.getMessage() for r in answers] == [
        "button repeat: noface", "button mute: muted",
        f"button status: model version {daemon.models.serving.info.version}, camera not working"]
    assert {r.threadName for r in answers} == {"daemon-loop"}  # not gpiozero's threads
    # Each answer came while the loop still waited to reopen the camera (the clock stands
    # still), well within a second of the press's end.
    assert len(camera.opens) == 1
    ends = [p + hold for p, hold in zip(pressed, (0.03, 0.35, 0.7), strict=True)]
    assert all(r.created - end < 1.0 for r, end in zip(answers, ends, strict=True))
    assert stop_took < 1.0 and running.result == 0


def test_a_synced_model_is_swapped_in_between_frames_and_said(tmp_path, monkeypatch, log, model_path, astronaut):
    """The feed outlasts the swap however fast the machine serves frames (the smoke check
    alone takes longer than a short feed); frames go on after it until the test stops."""
    store = tmp_path / "store"
    install(store, model_path, "1.0.0")
    camera = ScriptedCamera(Feed(1_000_000, "end", astronaut))
    daemon = make_daemon(tmp_path, camera, monkeypatch, store=store)
    running = Running(daemon)
    try:
        wait_for(log, "state WAITING -> SERVING")
        install(store, model_path, "1.1.0")  # as `facecue sync` would, while frames flow
        assert wait_for(log, "event model_updated", timeout=120), messages(log)
        at_swap = camera.index
        deadline = time.monotonic() + 60
        while camera.index < at_swap + 30 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert camera.index >= at_swap + 30  # frames flow on after the swap
    finally:
        stop_took = running.stop()
    assert running.result == 0 and stop_took < 5.0
    said = messages(log)
    swapped = said.index("model loaded version 1.1.0 from " + str(store / "versions/1.1.0/model.tflite"))
    assert said[swapped + 1].startswith("event model_updated") and len(messages(log, "event model_updated")) == 1
    assert not messages(log, "end of scripted camera")  # mid-stream: the feed had not ended
    assert daemon.models.serving.info.version == "1.1.0"


def test_a_model_failing_on_a_face_gives_way_to_the_previous_one_said_once(tmp_path, monkeypatch, log,
                                                                          model_path, clear_faces):
    from tools.data.face_video import compose_frame

    store = tmp_path / "store"
    install(store, model_path, "1.0.0")
    install(store, nan_weights_model(tmp_path), "1.1.0")
    happy = compose_frame(clear_faces["happy"])
    camera = ScriptedCamera(Feed(int(4 * FPS), "end", happy))
    daemon = make_daemon(tmp_path, camera, monkeypatch, store=store, smoke_check=METADATA_ONLY)
    running = Running(daemon)
    try:
        running.thread.join(120)
    finally:
        running.stop()
    assert running.result == 0
    errors = messages(log, "model error")
    assert len(errors) == 1, errors
    assert re.fullmatch(r"model error: model 1\.1\.0 from .*/versions/1\.1\.0/model\.tflite failed at run time: "
                        r"model 1\.1\.0 gave no probabilities \(row sum 0\); serving 1\.0\.0 from "
                        r".*/versions/1\.0\.0/model\.tflite instead", errors[0]), errors[0]
    assert len(messages(log, "event error")) == 1
    assert len(messages(log, "model loaded version 1.1.0")) == 1  # never loaded again
    assert [m.split()[1] for m in messages(log, "announce ")] == ["happy"]  # the device speaks on
    assert daemon.models.serving.info.version == "1.0.0"
    assert "SERVING" in states(log) and "LOADING" not in states(log)[1:]


@pytest.mark.parametrize("retry", [True, False])
def test_with_no_model_left_the_service_waits_and_a_foreground_run_ends(tmp_path, monkeypatch, log, astronaut,
                                                                        retry):
    """The configured model and the shipped one both fail on a face (the shipped one is
    swapped for a second broken file): the service says "error" for each and waits in
    LOADING; `facecue run` ends with one line naming both."""
    configured = nan_weights_model(tmp_path / "a")
    shipped = nan_weights_model(tmp_path / "b")
    monkeypatch.setattr("device.model_slot.DEFAULT_MODEL", shipped)
    camera = ScriptedCamera(Feed(10, "end", astronaut))
    daemon = make_daemon(tmp_path, camera, monkeypatch, retry=retry, model=configured, smoke_check=METADATA_ONLY)
    running = Running(daemon)
    try:
        if retry:
            wait_for(log, "no usable model", count=2)
        else:
            running.thread.join(60)
    finally:
        running.stop()
    both = f"{configured} failed at run time; {shipped} failed at run time"
    assert len(messages(log, "event error")) == 2  # once per model that failed, not per retry
    assert messages(log, "model error") == [
        f"model error: model 9.9.9-nan from {configured} failed at run time: model 9.9.9-nan gave no "
        f"probabilities (row sum 0); serving 9.9.9-nan from {shipped} instead",
        f"model error: model 9.9.9-nan from {shipped} failed at run time: model 9.9.9-nan gave no "
        f"probabilities (row sum 0)"]
    if retry:
        assert running.result == 0 and states(log)[-3:] == ["SERVING", "LOADING", "STOPPED"]
        assert messages(log, "no usable model")[0] == f"no usable model ({both}); retrying in 1s"
    else:
        assert str(running.result) == both


def test_a_double_press_says_who_is_in_the_latest_frame(tmp_path, monkeypatch, log, model_path, astronaut):
    factory = MockFactory()
    camera = ScriptedCamera(Feed(1_000_000, "end", astronaut))
    daemon = make_daemon(tmp_path, camera, monkeypatch, model=model_path,
                         config='[buttons]\nrepeat_pin = "GPIO17"\ndouble_press = 0.4\n')
    pin = factory.pin(17)
    try:
        with press_buttons(daemon.cfg.buttons, daemon.inbox, pin_factory=factory):
            running = Running(daemon)
            try:
                wait_for(log, "state WAITING -> SERVING")
                for _ in range(2):
                    pin.drive_low()
                    time.sleep(0.03)
                    pin.drive_high()
                said = wait_for(log, "button people", timeout=10.0)
            finally:
                running.stop()
    finally:
        factory.reset()
    assert said and re.fullmatch(r"button people: 1 person, \d+\.\d m, facing", said[0]), said
    assert not messages(log, "button repeat")  # two short presses are one double press, not two repeats
