"""One frame through detect -> preprocess -> classify -> decide, with stage timings.

The daemon, the benchmark and the tests all push frames through this one
class, so the latency the benchmark reports is the latency the wearer gets.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from core.frames import Announcement, FaceBox, Frame, Prediction
from device.classify import Classifier, ModelError
from device.decide import Decider
from device.people import FacingWatch
from device.tracker import FaceTracker

STAGES = ("capture", "detect", "preprocess", "classify", "decide", "total")


class BadFrame(ValueError):
    """A frame the pipeline cannot use (empty, wrong shape or type)."""


class ModelFailed(ModelError):
    """The serving model raised on a real face: the model, not the frame, is broken.

    ``classifier`` is the one that failed, so the daemon can drop exactly it
    (a hot swap may already have replaced it).
    """

    def __init__(self, classifier: Classifier, cause: Exception) -> None:
        lines = str(cause).splitlines() or [type(cause).__name__]
        super().__init__(f"model {classifier.info.version} from {classifier.info.path} "
                         f"failed at run time: {lines[0]}")
        self.classifier = classifier


def check_frame(frame: Frame, min_side: int = 48) -> None:
    """Reject garbage from a flaky camera before it reaches OpenCV."""
    img = frame.image
    if not hasattr(img, "dtype") or img.dtype.name != "uint8":
        raise BadFrame(f"frame {frame.index}: expected uint8 pixels, got {getattr(img, 'dtype', type(img))}")
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3)):
        raise BadFrame(f"frame {frame.index}: expected HxW or HxWx3, got shape {img.shape}")
    if min(img.shape[:2]) < min_side:
        raise BadFrame(f"frame {frame.index}: {img.shape[1]}x{img.shape[0]} is smaller than {min_side}px")


@dataclass
class StepResult:
    box: FaceBox | None
    prediction: Prediction | None
    announcements: list[Announcement]
    ms: dict[str, float]


@dataclass
class StageStats:
    """Running sums of per-stage milliseconds, reset at each report."""

    frames: int = 0
    faces: int = 0
    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    since: float = field(default_factory=time.monotonic)

    def add(self, result: StepResult) -> None:
        self.frames += 1
        self.faces += result.box is not None
        for k, v in result.ms.items():
            self.sums[k] += v

    def summary(self) -> dict[str, float]:
        """Frames per second of wall time and mean ms per stage since the last reset."""
        elapsed = max(time.monotonic() - self.since, 1e-9)
        n = max(self.frames, 1)
        out = {"fps": self.frames / elapsed, "frames": float(self.frames), "faces": float(self.faces)}
        out.update({k: v / n for k, v in self.sums.items()})
        return out

    def line(self) -> str:
        s = self.summary()
        stages = " ".join(f"{k} {s[k]:.1f}ms" for k in STAGES)
        return f"stats fps {s['fps']:.1f} frames {int(s['frames'])} faces {int(s['faces'])} {stages}"


class Pipeline:
    """The per-frame work of the device, minus capture and output.

    It holds no model: each :meth:`step` is handed the one to use (the daemon
    hands it its model slot's serving model), so a swap between frames needs
    no rebuild and never splits a frame.
    """

    def __init__(self, tracker: FaceTracker, decider: Decider, facing: FacingWatch | None = None) -> None:
        """``facing``: the optional earcon for a face turning to the wearer (``[people] facing_earcon``)."""
        self.tracker = tracker
        self.decider = decider
        self.facing = facing

    def step(self, frame: Frame, classifier: Classifier, capture_ms: float = 0.0) -> StepResult:
        """One frame through ``classifier``; raises BadFrame for garbage and ModelFailed
        for a model that broke on it."""
        check_frame(frame)
        ms = {"capture": capture_ms}
        t0 = time.perf_counter()
        box = self.tracker.find(frame.image, frame.t)
        t1 = time.perf_counter()
        face = prediction = None
        try:
            if box is not None:
                try:
                    face = classifier.preprocess(frame.image, box)
                except ValueError:  # landmarks that coincide, a box off the frame: no usable face this frame
                    box = None
            t2 = time.perf_counter()
            if face is not None:
                prediction = classifier.classify(face)
        except Exception as exc:  # anything else the model's preprocessing or interpreter raised
            raise ModelFailed(classifier, exc) from exc
        t3 = time.perf_counter()
        announcements = self.decider.update(prediction, frame.t)
        if self.facing is not None:
            announcements += self.facing.update(box, frame.t)
        t4 = time.perf_counter()
        ms.update(detect=(t1 - t0) * 1e3, preprocess=(t2 - t1) * 1e3, classify=(t3 - t2) * 1e3,
                  decide=(t4 - t3) * 1e3)
        ms["total"] = capture_ms + (t4 - t0) * 1e3
        return StepResult(box, prediction, announcements, ms)
